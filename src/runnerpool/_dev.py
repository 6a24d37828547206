"""``runnerpool dev``: a load balancer and runners on this machine, with example functions."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources

from .lb._registry import Registry
from .lb._serve import serve_lb

__all__ = ["run_dev"]

logger = logging.getLogger(__name__)

#: Seconds a runner process may take to start listening.
START_TIMEOUT = 30.0


def _die_with(parent: int) -> None:
    """Be SIGKILLed when ``parent`` dies, even by SIGKILL (run in the child, before exec).

    A runner killed so takes its function processes with it (each dies with its runner), and
    the next runner to start removes what they left (socket directories, cgroups).
    """
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


@contextlib.asynccontextmanager
async def runner_processes(count: int, runner_args: Sequence[str] = ()) -> AsyncIterator[list[str]]:
    """Start ``count`` runner processes on free loopback ports; yield their addresses.

    ``runner_args`` are added to each ``runnerpool runner`` command line.

    On exit every process gets SIGTERM (it drains), then SIGKILL after 10 s. If this process
    dies without that (SIGKILL, or SIGHUP when its terminal closes), the kernel kills them
    (Linux's parent-death signal).

    Raises:
        RuntimeError: If a runner does not start.
    """
    processes: list[asyncio.subprocess.Process] = []
    try:
        addresses = []
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "runnerpool",
                "--log-level",
                "warning",
                "runner",
                "--port",
                "0",
                *runner_args,
                stdout=asyncio.subprocess.PIPE,
                # Its own session: Ctrl-C reaches `dev` only, which stops runners last.
                start_new_session=True,
                preexec_fn=_pdeath(os.getpid()),
            )
            processes.append(process)
            assert process.stdout is not None
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    line = (await process.stdout.readline()).decode()
            except TimeoutError:
                line = ""
            if not line.startswith("runner listening on "):
                raise RuntimeError(f"a runner did not start (it said {line!r})")
            addresses.append(line.removeprefix("runner listening on ").strip())
        yield addresses
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


def _pdeath(parent: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    return lambda: _die_with(parent)


def banner(url: str, addresses: list[str], registry: Registry) -> str:
    """The text `runnerpool dev` prints once it serves."""
    names = ", ".join(function.id for function in registry.functions)
    return "\n".join(
        [
            f"runnerpool dev: a load balancer and {len(addresses)} runners on this machine.",
            f"  load balancer  {url}   (also {url}/metrics and {url}/health)",
            f"  runners        {', '.join(addresses)}",
            f"  functions      {names}",
            "Try:",
            f'  curl -X POST {url}/invoke/hello -d \'{{"name": "Ada"}}\'',
            "Press Ctrl-C to stop.",
        ]
    )


async def run_dev(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    runners: int = 3,
    placer: str = "ch",
    echo: Callable[[str], None] = print,
    runner_args: Sequence[str] = (),
) -> None:
    """Serve the example functions through a load balancer and runners until Ctrl-C.

    Args:
        host: The load balancer's address.
        port: The load balancer's port (0: any free port).
        runners: How many runner processes to start.
        placer: The placer's name.
        echo: Where the banner goes.
        runner_args: Added to each runner's command line (e.g. ``--bundles DIR``).
    """
    registry = Registry.load(resources.files("runnerpool") / "examples.toml")
    async with runner_processes(runners, runner_args) as addresses:
        await serve_lb(
            registry,
            addresses,
            placer=placer,
            host=host,
            port=port,
            on_ready=lambda url: echo(banner(url, addresses, registry)),
        )
    echo("runnerpool dev: stopped.")
