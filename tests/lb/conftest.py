"""Real runner and load balancer processes for the load balancer's end-to-end tests.

Every process a fixture starts is killed (if still running) and waited for at the end, and
its stdout pipe closed; stderr goes to a file in the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runnerpool import GrpcRunner, RunnerStatus

RUNNERPOOL = [sys.executable, "-m", "runnerpool"]
MB = 1024 * 1024

#: The functions every test load balancer serves: the examples, plus one too big for runners
#: started with a small ``--max-memory``.
FUNCTIONS_TOML = """\
[[apps]]
name = "tests"

[[functions]]
id = "echo"
name = "echo"
app = "tests"
image = "echo"

[[functions]]
id = "hello"
name = "hello"
app = "tests"
image = "hello"

[[functions]]
id = "slow"
name = "slow"
app = "tests"
image = "slow"
timeout = 60

[[functions]]
id = "fail"
name = "fail"
app = "tests"
image = "fail"

[[functions]]
id = "big"
name = "big"
app = "tests"
image = "echo"
memory = 512
"""

#: Short placer timeouts, so that "every runner busy" answers 503 after half a second.
FAST_PLACER = {
    "placer_timeout": "500ms",
    "detached_placer_timeout": "500ms",
    "retry_all_delay": "10ms",
}
PLACER_TIMEOUT = 0.5

#: Fn's 503 body for ErrCallTimeoutServerBusy.
BUSY_BODY = b'{"message":"Timed out - server too busy"}\n'
JSON_ERROR = "application/json; charset=utf-8"


@dataclass
class Process:
    """A started ``runnerpool`` process.

    Attributes:
        popen: The process.
        address: What it printed once ready: ``host:port`` for a runner, the base URL
            (``http://host:port``) for a load balancer, the whole banner for ``dev``.
        stderr_path: The file its stderr goes to.
    """

    popen: subprocess.Popen[str]
    address: str
    stderr_path: Path

    def stderr(self) -> str:
        """Return what the process wrote on stderr so far."""
        return self.stderr_path.read_text()

    def signal(self, signum: int) -> None:
        """Send a signal to the process."""
        self.popen.send_signal(signum)

    async def wait(self, seconds: float = 10) -> int:
        """Wait up to ``seconds`` for the process to exit, off the event loop; return its code."""
        return await asyncio.to_thread(self.popen.wait, seconds)


class Processes:
    """Starts ``runnerpool`` processes and stops every one of them in :meth:`close`.

    Args:
        directory: Where config files and stderr logs go.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._started: list[subprocess.Popen[str]] = []
        self._count = 0

    def _path(self, name: str) -> Path:
        self._count += 1
        return self.directory / f"{self._count:02d}-{name}"

    def start(
        self,
        args: Sequence[str],
        ready_prefix: str,
        *,
        env: Mapping[str, str] | None = None,
        ready_lines: int = 1,
        prefix: Sequence[str] = (),
    ) -> Process:
        """Start ``runnerpool ARGS``; return once it printed a line starting ``ready_prefix``.

        Args:
            args: The command line after ``runnerpool``.
            ready_prefix: The prefix of the ready line; what follows it is the address.
            env: Extra environment variables.
            ready_lines: Lines of stdout to read, the first being the ready line (the rest
                are kept in the address, joined by newlines).
            prefix: A command to run ``runnerpool`` with (e.g. ``ip netns exec NS``).
        """
        stderr_path = self._path("stderr.log")
        with stderr_path.open("w") as stderr:
            popen = subprocess.Popen(
                [*prefix, *RUNNERPOOL, *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self._started.append(popen)
        assert popen.stdout is not None
        lines = [popen.stdout.readline() for _ in range(ready_lines)]
        if lines[0].startswith("{") and not ready_prefix.startswith("{"):
            # JSON mode, and the caller wants the message: the ready line is a log entry.
            lines[0] = json.loads(lines[0]).get("message", lines[0])
        if not lines[0].startswith(ready_prefix):
            popen.kill()
            popen.wait(10)
            pytest.fail(f"{args[:3]} did not start: {lines!r}\n{stderr_path.read_text()}")
        rest = [line.rstrip("\n") for line in lines[1:]]
        address = "\n".join([lines[0].removeprefix(ready_prefix).strip(), *rest])
        return Process(popen, address, stderr_path)

    def runner(self, *args: str) -> Process:
        """Start ``runnerpool runner --port 0 ARGS``."""
        return self.start(
            ["--log-level", "warning", "runner", "--port", "0", *args], "runner listening on "
        )

    def config(self, text: str = FUNCTIONS_TOML, name: str = "functions.toml") -> Path:
        """Write a file in the test directory; return its path."""
        path = self._path(name)
        path.write_text(text)
        return path

    def lb(
        self,
        runners: Sequence[str],
        *args: str,
        placer_config: Mapping[str, str] | None = FAST_PLACER,
        log_level: str = "warning",
        config: Path | None = None,
    ) -> Process:
        """Start ``runnerpool lb`` on port 0, serving :data:`FUNCTIONS_TOML` on ``runners``.

        It runs one worker process unless ``args`` has ``--workers``.

        Args:
            runners: The runners' addresses.
            *args: More options.
            placer_config: The ``--placer-config`` JSON, or ``None`` for Fn's defaults.
            log_level: The process's log level.
            config: Another functions file to serve.
        """
        config = self.config() if config is None else config
        options = ["--config", str(config), "--runner-addresses", ",".join(runners)]
        if "--workers" not in args:
            # One process, whose state (placer, metrics, logs) the tests read, unless asked.
            options += ["--workers", "1"]
        if placer_config is not None:
            options += ["--placer-config", str(self.config(json.dumps(placer_config), "p.json"))]
        return self.start(
            ["--log-level", log_level, "lb", "--port", "0", *options, *args],
            "load balancer listening on ",
        )

    def close(self) -> None:
        """Kill every process still running, wait for all of them, close their pipes."""
        for popen in self._started:
            if popen.poll() is None:
                popen.kill()
        for popen in self._started:
            popen.wait(10)
            if popen.stdout is not None:
                popen.stdout.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Processes started by one test, all stopped at its end."""
    started = Processes(tmp_path)
    yield started
    started.close()


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """Processes shared by the tests of a module, all stopped at its end."""
    started = Processes(tmp_path_factory.mktemp("processes"))
    yield started
    started.close()


def closed_port() -> int:
    """Return a loopback port that nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def listening(address: str) -> bool:
    """Return whether something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


async def runner_status(address: str) -> RunnerStatus:
    """Return the status of the runner at ``address``."""
    runner = GrpcRunner(address)
    try:
        return await runner.status()
    finally:
        await runner.aclose()


async def statuses(addresses: Sequence[str]) -> list[RunnerStatus]:
    """Return the status of each runner."""
    return list(await asyncio.gather(*(runner_status(a) for a in addresses)))


async def totals(addresses: Sequence[str]) -> tuple[int, int, int]:
    """Return (received, handled, active) summed over the runners."""
    found = await statuses(addresses)
    return (
        sum(s.requests_received for s in found),
        sum(s.requests_handled for s in found),
        sum(s.active_request_count for s in found),
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 5.0, what: str = "condition"
) -> float:
    """Poll ``check`` every 20 ms until it is true; return the seconds it took.

    Raises:
        AssertionError: If it is still false after ``within`` seconds.
    """
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what} still false after {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def wait_active(addresses: Sequence[str], count: int) -> None:
    """Wait until exactly ``count`` calls run on the runners, summed."""

    async def check() -> bool:
        return (await totals(addresses))[2] == count

    await eventually(check, what=f"{count} active call(s)")


class Metrics:
    """A parsed ``GET /metrics`` answer; a sample never recorded reads as 0.

    Args:
        text: The Prometheus text exposition.
    """

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        """Return the value of the sample ``name`` with exactly these labels (0 if absent)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def get_metrics(client: httpx.AsyncClient) -> Metrics:
    """Fetch and parse the load balancer's ``/metrics``."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    return Metrics(response.text)


def sigkill(process: Process) -> None:
    """Kill a process at once (SIGKILL)."""
    process.signal(signal.SIGKILL)
