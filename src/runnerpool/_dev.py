"""``runnerpool dev``: a load balancer and runners on this machine, serving your functions.

Without a bundles directory or a functions file it serves the examples of ``examples/``
(declared by ``runnerpool/examples.toml``). With ``--bundles DIR`` each bundle folder under
``DIR`` is a function of the app ``dev`` (:mod:`runnerpool.lb._bundle_registry`); with
``--config FILE`` the functions are the file's. Either way the bundles are watched: an edit
is served from the next call on (:mod:`runnerpool._dev_watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from pathlib import Path

from ._dev_watch import FunctionWatcher, versioned
from .lb import LBSettings, LiveRegistry, Registry, registry_from_bundles, serve_lb

__all__ = ["DEFAULT_RUNNERS", "dev_functions", "run_dev"]

logger = logging.getLogger(__name__)

#: Seconds a runner process may take to start listening.
START_TIMEOUT = 30.0
#: Runner processes `runnerpool dev` starts by default.
DEFAULT_RUNNERS = 3
#: The example functions' registry, served when neither bundles nor a functions file is given.
EXAMPLES_TOML = "examples.toml"


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
            address = ready_address(line)
            if address is None:
                raise RuntimeError(f"a runner did not start (it said {line!r})")
            addresses.append(address)
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


def ready_address(line: str) -> str | None:
    """Return the address in a runner's ready line, or ``None`` if it is not one.

    The line is ``runner listening on ADDRESS``, or in JSON mode a JSON object whose
    ``message`` is that and whose ``address`` is the address.
    """
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        line = str(entry.get("message", "")) if isinstance(entry, dict) else ""
    if not line.startswith("runner listening on "):
        return None
    return line.removeprefix("runner listening on ").strip()


def dev_functions(
    bundles: Path | None, config: Path | None = None, *, examples: bool = False
) -> LiveRegistry:
    """Return the functions ``runnerpool dev`` serves, read again on each reload.

    Args:
        bundles: The directory of bundles the runners serve (``None``: the runners run the
            in-process examples).
        config: A functions file; ``None``: one function per bundle under ``bundles``.
        examples: Serve the examples' registry, ``examples.toml`` (``bundles`` and
            ``config`` are then the examples' and ``None``).

    Returns:
        The functions, their images tagged with their bundle's version when there are
        bundles (so that an edited bundle gets new processes).

    Raises:
        ConfigError: If the functions file or a ``func.yaml`` is invalid.
    """

    def load() -> Registry:
        if examples:
            registry = Registry.load(resources.files("runnerpool") / EXAMPLES_TOML)
        elif config is not None:
            registry = Registry.load(config)
        elif bundles is not None:
            registry = registry_from_bundles(bundles)
        else:
            raise ValueError("dev_functions needs bundles, a functions file, or examples=True")
        return registry if bundles is None else versioned(registry, bundles)

    source = EXAMPLES_TOML if examples else config if config is not None else bundles
    return LiveRegistry(load, str(source))


def banner(
    url: str,
    addresses: list[str],
    registry: Registry,
    *,
    watched: Path | None = None,
    examples: bool = False,
) -> str:
    """The text `runnerpool dev` prints once it serves.

    Args:
        url: The load balancer's base URL.
        addresses: The runners' addresses.
        registry: The functions served.
        watched: The bundles directory whose edits are served on the next call, if any.
        examples: Whether the functions are the examples (one sample call is shown).
    """
    lines = [
        f"runnerpool dev: a load balancer and {len(addresses)} runners on this machine.",
        f"  load balancer  {url}   (also {url}/metrics and {url}/health)",
        f"  runners        {', '.join(addresses)}",
    ]
    names = ", ".join(function.id for function in registry.functions) or "none yet"
    if examples:
        lines += [
            f"  functions      {names}",
            "Try:",
            f'  curl -X POST {url}/invoke/hello -d \'{{"name": "Ada"}}\'',
        ]
    else:
        where = "" if watched is None else f" (from {watched}: an edit applies on the next call)"
        lines += [f"  functions      {names}{where}", "Try:"]
        lines += [
            f"  curl -X POST {shlex.quote(f'{url}/invoke/{function.id}')} -d ''"
            for function in registry.functions
        ] or [f"  (add a folder holding func.py to {watched}: it is served at once)"]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


async def run_dev(
    *,
    functions: LiveRegistry | None = None,
    bundles: Path | None = None,
    config: Path | None = None,
    examples: bool = True,
    runners: int = DEFAULT_RUNNERS,
    settings: LBSettings | None = None,
    echo: Callable[[str], None] = print,
    runner_args: Sequence[str] = (),
) -> None:
    """Serve functions through a load balancer and runners until Ctrl-C.

    Args:
        functions: The functions to serve (default: :func:`dev_functions` of ``bundles``,
            ``config`` and ``examples``).
        bundles: The runners' bundles directory (given to them in ``runner_args`` too):
            watched, so that an edit is served on the next call. ``None``: nothing watched.
        config: The functions file, watched too, if the functions come from one.
        examples: Whether the functions are the examples (the banner shows a sample call).
        runners: How many runner processes to start.
        settings: The load balancer's settings (address, placer, limits; defaults when
            omitted).
        echo: Where the banner goes.
        runner_args: Added to each runner's command line (e.g. ``--bundles DIR``).

    Raises:
        ConfigError: If ``functions`` is not given and the functions do not read.
    """
    live = dev_functions(bundles, config, examples=examples) if functions is None else functions
    watcher = None if bundles is None else FunctionWatcher(live, bundles, config)
    async with runner_processes(runners, runner_args) as addresses:
        if watcher is not None:
            await watcher.start()
        try:
            await serve_lb(
                live,
                addresses,
                settings,
                on_ready=lambda url: echo(
                    banner(url, addresses, live.current, watched=bundles, examples=examples)
                ),
            )
        finally:
            if watcher is not None:
                await watcher.aclose()
    echo("runnerpool dev: stopped.")
