"""LB benchmark: calls through the load balancer's HTTP front end against the runner directly.

One call is ``POST /invoke/echo`` with a 5-byte body (``hello``) to ``runnerpool lb``, which
places it on one ``runnerpool runner`` serving the in-process example ``echo`` (it
answers its body). The load balancer and the runner are separate processes, started here with
``--port 0``; the LB gets ``examples.toml`` as its registry and the runner's address. Paths:

* ``direct``: the baseline, the same runner called over the same protocol from this process:
  per call a new ``BufferedCall(Call(fn_id="echo", image="echo", ...), body=b"hello")``
  through ``GrpcRunner.try_exec``, over one HTTP/2 connection. Every response is checked.
* ``LB``: HTTP/1.1 keep-alive calls to the LB from a load generator in its own process: ``wrk``
  (``-t1 -c<conc> --latency`` with a Lua script that POSTs the body) when it is installed, else
  an asyncio client of this module (``--client python``; httptools parses the responses, each
  connection sends its next request from the parser's callback). Any non-2xx response or
  socket error fails the run, and a sample of responses is checked for 200 ``hello`` and an
  ``Fn-Call-Id`` after the warm-up and after every LB cell (the Python client checks all).
* ``lb-quiet``: the same through a second LB process started with ``--no-access-log``: the
  access log's cost. Both LBs write their stderr to a file, as to a log collector.
* ``ceiling``: the same load generator against a trivial HTTP server (raw asyncio and
  httptools, a separate process of this module) that answers ``hello`` at once: the
  generator's own ceiling, or a lower bound of it, since that server is Python too. It should
  be far above the LB's rate, or the LB's figures measure the generator.

Concurrency is the number of connections (LB, ceiling) or of asyncio tasks (direct) doing
calls back to back, each cell for a fixed time. For each cell: calls per second, p50 and p99
latency, and CPU per call from ``/proc/<pid>/stat`` (utime + stime, clock ticks of 10 ms) of
the process in front of the runner (the LB process; this process for ``direct``; the trivial
server for ``ceiling``), of the runner, and of the load generator (``time.process_time()`` of
the Python client; ``getrusage(RUSAGE_CHILDREN)`` for wrk). Every path is warmed up first;
paths are interleaved within each repeat, in alternating order, so machine noise hits them
alike, and the row shown is the repeat with the best throughput. Under the table: the LB's
added latency (LB p50 - direct p50, and the same at p99) and its throughput as a fraction of
the direct path's, and the load generator's ceiling against the LB's rate. Loopback only; the
processes are stopped (or killed) at the end, also on error.

``--tracing`` adds two paths through LB processes with tracing on (``lb-unsampled``: sampler
ratio 0, ``lb-traced``: every call), configured as an operator would, by OpenTelemetry's
variables (``OTEL_TRACES_EXPORTER=otlp`` over ``http/protobuf``, batched), exporting to a
trivial OTLP sink process of this module on loopback; the ``lb`` path is tracing off. The
runner does not trace. The summary then gives their LB CPU per call against ``lb``'s.

Note that ``direct`` runs two processes (this one and the runner) where ``LB`` runs three on
the same cores (generator, LB, runner): the fraction is the end-to-end cost of the HTTP hop.

System calls: ``--strace SECONDS`` adds, after the timed cells, one traced cell of SECONDS per
path (direct and LB) and concurrency, with ``strace -c -f`` attached to the process in front of
the runner and to the runner, and prints the writes (``sendto``/``write``/``sendmsg``/``writev``)
and all system calls per call of each. Traced cells are slower and never timed; without
``strace`` a line says so and the rest runs as usual. ``--syscall-tool perf`` counts with
``perf stat`` on the syscall tracepoints instead, which does not stop the processes (see
``bench/engage.py``).

Profiling: ``--profile-lb FILE`` / ``--profile-runner FILE`` run that process under
``cProfile`` and write its stats to FILE when it stops (slower; read the profile, not the
table).

Run: ``python -m bench.lb`` (``--help`` for the knobs; about 100 s with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import http.client
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlsplit

import httptools

import runnerpool
from bench._syscalls import TOOL_LABELS, WRITE_CALLS, SyscallCount, strace_available, traced
from bench.engage import process_cpu, read_line
from bench.grpc_stacks import ROOT, SERVER_START_TIMEOUT, percentile
from runnerpool import BufferedCall, Call, GrpcRunner

FN_ID = "echo"
IMAGE = "echo"
BODY = b"hello"
CONTENT_TYPE = "text/plain"
CONFIG = Path(runnerpool.__file__).resolve().parent / "examples.toml"
PATHS = ("direct", "lb", "lb-quiet", "ceiling")
#: The paths ``--tracing`` adds: LBs tracing with the sampler ratio given.
TRACING_PATHS = {"lb-unsampled": "0", "lb-traced": "1"}
#: The paths through a load balancer: with its access log (the default), without, tracing.
LB_PATHS = ("lb", "lb-quiet", *TRACING_PATHS)
CELL_GRACE = 60.0  # seconds beyond a cell's duration before it counts as hung
STOP_TIMEOUT = 15.0  # seconds a server gets to drain and exit on SIGTERM before a kill
SAMPLE = 5  # responses checked after the warm-up and after every LB cell
GENERATORS = ("auto", "wrk", "python")
WRK_SCRIPT = f"""\
wrk.method = "POST"
wrk.body = "{BODY.decode()}"
wrk.headers["Content-Type"] = "{CONTENT_TYPE}"
"""


# --------------------------------------------------------------------------- processes


class Service:
    """A server child process that prints ``<ready><address>`` on stdout once it listens."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: str,
        stderr: IO[bytes] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        try:
            assert self.proc.stdout is not None
            line = read_line(self.proc.stdout, SERVER_START_TIMEOUT)
            if line is None or not line.startswith(ready):
                raise RuntimeError(f"{name} did not start: got {line!r}")
            self.address = line[len(ready) :].strip()
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def cpu(self) -> float:
        """CPU seconds the process used so far."""
        return process_cpu(self.proc.pid)

    def close(self) -> None:
        """SIGTERM (servers drain, a profiled one writes its stats); kill if it lingers."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=STOP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def python_argv(module: str, profile: str | None) -> list[str]:
    """``python [-m cProfile -o FILE] -m module``."""
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", profile]
    return [*argv, "-m", module]


def start_runner(profile: str | None) -> Service:
    """``runnerpool runner --port 0``, serving the examples in process."""
    argv = [*python_argv("runnerpool", profile), "--log-level", "warning"]
    return Service("runner", [*argv, "runner", "--port", "0"], "runner listening on ")


def start_lb(
    runner_address: str,
    profile: str | None,
    log: IO[bytes],
    *,
    access_log: bool = True,
    env: dict[str, str] | None = None,
) -> Service:
    """``runnerpool lb --port 0`` with the examples' registry, in front of one runner.

    Its stderr, the access log's line per call included, goes to ``log``; ``env`` is added
    to its environment.
    """
    argv = [*python_argv("runnerpool", profile), "--log-level", "warning", "lb", "--port", "0"]
    argv += ["--config", str(CONFIG), "--runner-addresses", runner_address, "--workers", "1"]
    if not access_log:
        argv.append("--no-access-log")
    return Service("load balancer", argv, "load balancer listening on ", stderr=log, env=env)


def tracing_env(sink: str, ratio: str) -> dict[str, str]:
    """OpenTelemetry's variables for an LB exporting OTLP/HTTP to ``sink``, sampling ``ratio``."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{sink}",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
    }


def start_otlp_sink() -> Service:
    """A trivial OTLP/HTTP receiver (this module): it answers every export 200, at once."""
    return Service("OTLP sink", [sys.executable, "-m", "bench.lb", "--serve-otlp"], TRIVIAL_READY)


def start_trivial_server() -> Service:
    """This module's trivial HTTP server (the load generator's ceiling)."""
    return Service(
        "trivial server", [sys.executable, "-m", "bench.lb", "--serve-trivial"], TRIVIAL_READY
    )


# --------------------------------------------------------------------------- trivial server

TRIVIAL_READY = "trivial server listening on "
TRIVIAL_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ncontent-type: %s\r\nfn-call-id: 0\r\n\r\n%s"
    % (len(BODY), CONTENT_TYPE.encode(), BODY)
)


#: What the OTLP sink answers: success, an empty ExportTraceServiceResponse.
OTLP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-type: application/x-protobuf\r\n\r\n"
)


class _TrivialConnection(asyncio.Protocol):
    """Answers every request with the same response, as soon as it is parsed."""

    def __init__(self, response: bytes = TRIVIAL_RESPONSE) -> None:
        self.response = response
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(self.response)


async def serve_trivial(response: bytes = TRIVIAL_RESPONSE) -> None:
    """Serve on 127.0.0.1, any port, until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(
        lambda: _TrivialConnection(response), "127.0.0.1", 0, backlog=1024
    )
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"{TRIVIAL_READY}{host}:{port}", flush=True)
        await stop.wait()


# --------------------------------------------------------------------------- load generators


@dataclasses.dataclass
class Load:
    """What a load generator measured in one run."""

    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # seconds
    failures: int  # bad responses (wrong status or body) and socket errors
    failure: str  # the first failure, described

    @classmethod
    def from_json(cls, text: str) -> Load:
        """Read the Python client's result line."""
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


class LoadGenerator(Protocol):
    """Drives HTTP keep-alive calls at a URL: ``POST`` of :data:`BODY`, for a fixed time."""

    name: str

    def run(self, url: str, concurrency: int, seconds: float) -> Load:
        """Run ``concurrency`` connections for ``seconds``; block until done."""
        ...

    def close(self) -> None:
        """Release what it holds."""
        ...


# ------------------------------------------------------------- the Python client (child side)


class _ClientRun:
    """One run of the Python client: connections, deadline, and what they recorded."""

    def __init__(self, request: bytes, deadline: float, connections: int) -> None:
        self.request = request
        self.deadline = deadline
        self.latencies: list[float] = []
        self.failures = 0
        self.failure = ""
        self.running = connections
        self.done = asyncio.get_running_loop().create_future()
        self.last = time.perf_counter()

    def fail(self, why: str) -> None:
        self.failures += 1
        if not self.failure:
            self.failure = why

    def finished(self) -> None:
        self.running -= 1
        if self.running == 0 and not self.done.done():
            self.done.set_result(None)


class _ClientConnection(asyncio.Protocol):
    """One keep-alive connection that sends its next request from the parser's callback."""

    def __init__(self, expected: bytes) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.expected = expected
        self.body = bytearray()
        self.transport: asyncio.Transport | None = None
        self.run: _ClientRun | None = None
        self.started = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self, run: _ClientRun) -> None:
        self.run = run
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        assert self.run is not None
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.stop(f"unparsable response: {exc!r}")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        run = self.run
        if run is None:
            return
        now = time.perf_counter()
        run.latencies.append(now - self.started)
        run.last = now
        status = self.parser.get_status_code()
        if status != 200 or self.body != self.expected:
            run.fail(f"{status} {bytes(self.body)[:80]!r}")
        self.body.clear()
        if now < run.deadline:
            self.send()
        else:
            self.run = None
            run.finished()

    def stop(self, why: str) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.fail(why)
            run.finished()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop(f"connection lost: {exc!r}")
        if not self.closed.done():
            self.closed.set_result(None)


async def client_run(url: str, concurrency: int, seconds: float) -> Load:
    """Open ``concurrency`` connections to ``url``, then call back to back for ``seconds``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()
    connections: list[_ClientConnection] = []
    try:
        for _ in range(concurrency):
            _, connection = await loop.create_connection(
                lambda: _ClientConnection(BODY), host, port
            )
            connections.append(connection)
        start = time.perf_counter()
        run = _ClientRun(request, start + seconds, concurrency)
        for connection in connections:
            connection.start(run)
        await asyncio.wait_for(run.done, seconds + CELL_GRACE)
        latencies = sorted(run.latencies)
        return Load(
            calls=len(latencies),
            seconds=run.last - start,
            p50_ms=percentile(latencies, 0.50) * 1e3 if latencies else 0.0,
            p99_ms=percentile(latencies, 0.99) * 1e3 if latencies else 0.0,
            client_cpu=time.process_time() - cpu0,
            failures=run.failures,
            failure=run.failure,
        )
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.gather(*(c.closed for c in connections))


def serve_client() -> None:
    """The client process: one JSON command per stdin line, one JSON result per stdout line."""
    with asyncio.Runner() as runner:
        for line in sys.stdin:
            command = json.loads(line)
            load = runner.run(
                client_run(command["url"], command["concurrency"], command["seconds"])
            )
            print(json.dumps(dataclasses.asdict(load)), flush=True)


# ------------------------------------------------------------ the load generators (our side)


class PythonClient:
    """The asyncio client above, in a child process that stays up between runs."""

    name = "Python asyncio client (httptools)"

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.lb", "--client-process"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, url: str, concurrency: int, seconds: float) -> Load:
        """Run in the child; block until it answers."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        command = {"url": url, "concurrency": concurrency, "seconds": seconds}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = read_line(self.proc.stdout, seconds + CELL_GRACE + SERVER_START_TIMEOUT)
        if line is None:
            raise RuntimeError(f"the Python client gave no result for {url}")
        return Load.from_json(line)

    def close(self) -> None:
        """End the child (it stops at the end of its stdin); kill it if it lingers."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


_WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_WRK_TIME = r"([\d.]+)(us|ms|s|m|h)"


def parse_wrk(output: str) -> Load:
    """Read ``wrk --latency``'s report (its CPU is measured by the caller)."""

    def search(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match

    def millis(match: re.Match[str], group: int) -> float:
        return float(match.group(group)) * _WRK_UNITS_MS[match.group(group + 1)]

    total = search(rf"^\s*(\d+) requests in {_WRK_TIME}")
    failures, failure = 0, ""
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx is not None:
        failures += int(non_2xx.group(1))
        failure = non_2xx.group(0)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors is not None:
        failures += sum(int(n) for n in errors.groups())
        failure = failure or errors.group(0)
    return Load(
        calls=int(total.group(1)),
        seconds=millis(total, 2) / 1e3,
        p50_ms=millis(search(rf"^\s*50(?:\.0+)?%\s+{_WRK_TIME}\s*$"), 1),
        p99_ms=millis(search(rf"^\s*99(?:\.0+)?%\s+{_WRK_TIME}\s*$"), 1),
        client_cpu=0.0,
        failures=failures,
        failure=failure,
    )


def children_cpu() -> float:
    """CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class WrkClient:
    """``wrk -t1``: one thread, ``-c`` connections, a Lua script that POSTs the body."""

    def __init__(self, wrk: str) -> None:
        self.wrk = wrk
        self.name = f"wrk ({wrk}, one thread)"
        self.dir = tempfile.TemporaryDirectory(prefix="runnerpool-wrk-")
        self.script = Path(self.dir.name) / "post.lua"
        self.script.write_text(WRK_SCRIPT)

    def run(self, url: str, concurrency: int, seconds: float) -> Load:
        """Run wrk to the end (its duration is whole seconds) and read its report."""
        duration = max(1, round(seconds))
        argv = [self.wrk, "-t1", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s"]
        argv += ["-s", str(self.script), "--latency", url]
        cpu0 = children_cpu()
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + CELL_GRACE, check=False
        )
        cpu = children_cpu() - cpu0
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        return dataclasses.replace(parse_wrk(done.stdout), client_cpu=cpu)

    def close(self) -> None:
        """Remove the script."""
        self.dir.cleanup()


def load_generator(choice: str) -> LoadGenerator:
    """The load generator: wrk if asked for or (``auto``) installed, else the Python client."""
    wrk = shutil.which("wrk")
    if choice == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client python")
    if choice != "python" and wrk is not None:
        return WrkClient(wrk)
    return PythonClient()


def check_sample(url: str, count: int) -> None:
    """Fail loudly unless ``count`` calls through the LB answer 200 ``hello`` with a call id."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        for _ in range(count):
            connection.request("POST", parts.path, BODY, {"Content-Type": CONTENT_TYPE})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body != BODY or not response.getheader("Fn-Call-Id"):
                raise RuntimeError(f"unexpected LB response: {response.status} {body[:80]!r}")
    finally:
        connection.close()


# --------------------------------------------------------------------------- direct path


class DirectCaller:
    """The baseline: ``GrpcRunner.try_exec`` from this process, a new call each time."""

    def __init__(self, address: str) -> None:
        self.runner = GrpcRunner(address)
        self.counter = itertools.count()

    async def call(self) -> None:
        """One call to the runner; fail loudly unless it echoed the body with status 200."""
        model = Call(
            id=f"01DIRECT{next(self.counter):018d}",
            fn_id=FN_ID,
            image=IMAGE,
            timeout=30,
            memory=128,
        )
        call = BufferedCall(model, body=BODY)
        await self.runner.try_exec(call)
        response = call.response_writer
        if response.status_code != 200 or response.body != BODY:
            raise RuntimeError(
                f"unexpected runner response: {response.status_code} {bytes(response.body)[:80]!r}"
            )

    async def close(self) -> None:
        """Close the connection."""
        await self.runner.aclose()


async def drive_for(
    call: Callable[[], Awaitable[None]], seconds: float, concurrency: int
) -> tuple[list[float], float]:
    """Call back to back from ``concurrency`` tasks for ``seconds``: latencies and wall time."""
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds

    async def worker() -> None:
        while clock() < deadline:
            began = clock()
            await call()
            latencies.append(clock() - began)

    async with asyncio.timeout(seconds + CELL_GRACE), asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return latencies, clock() - start


# --------------------------------------------------------------------------- measurement


@dataclasses.dataclass
class Cell:
    """One measured cell: a path at a concurrency."""

    path: str
    concurrency: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    front_cpu_us: float  # LB process; this process (direct); trivial server (ceiling)
    runner_cpu_us: float | None
    client_cpu_us: float | None
    #: The least front CPU per call over the repeats (set by run_benchmark): the steadiest
    #: figure on a busy machine, used to compare LBs.
    least_front_cpu_us: float = float("inf")

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class Bench:
    """Everything a run measures with."""

    runner: Service
    lb: Service
    quiet_lb: Service
    trivial: Service
    generator: LoadGenerator
    direct: DirectCaller
    #: The LBs of the tracing paths, by path (empty without ``--tracing``).
    tracing: dict[str, Service] = dataclasses.field(default_factory=dict)

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths this run measures."""
        return (*PATHS, *self.tracing)

    @property
    def lb_url(self) -> str:
        """The LB's invoke URL of the function."""
        return f"{self.lb.address}/invoke/{FN_ID}"

    def front(self, path: str) -> tuple[Service, str]:
        """The process a load-generator path drives, and its URL."""
        if path == "lb":
            return self.lb, self.lb_url
        if path == "lb-quiet":
            return self.quiet_lb, f"{self.quiet_lb.address}/invoke/{FN_ID}"
        if path in self.tracing:
            return self.tracing[path], f"{self.tracing[path].address}/invoke/{FN_ID}"
        return self.trivial, self.trivial_url

    @property
    def trivial_url(self) -> str:
        """The same path on the trivial server."""
        return f"http://{self.trivial.address}/invoke/{FN_ID}"


async def measure_direct(bench: Bench, concurrency: int, seconds: float) -> Cell:
    """The direct path: this process calls the runner."""
    gc.collect()
    runner0, cpu0 = bench.runner.cpu(), time.process_time()
    latencies, wall = await drive_for(bench.direct.call, seconds, concurrency)
    cpu, runner = time.process_time() - cpu0, bench.runner.cpu() - runner0
    latencies.sort()
    calls = len(latencies)
    return Cell(
        path="direct",
        concurrency=concurrency,
        calls=calls,
        seconds=wall,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        front_cpu_us=cpu / calls * 1e6,
        runner_cpu_us=runner / calls * 1e6,
        client_cpu_us=None,
    )


async def measure_http(bench: Bench, path: str, concurrency: int, seconds: float) -> Cell:
    """The LB path or the generator's ceiling: the load generator drives a URL."""
    front, url = bench.front(path)
    front0, runner0 = front.cpu(), bench.runner.cpu()
    load = await asyncio.to_thread(bench.generator.run, url, concurrency, seconds)
    front_cpu, runner = front.cpu() - front0, bench.runner.cpu() - runner0
    if load.failures or not load.calls:
        raise RuntimeError(
            f"{path} c={concurrency}: {load.failures} failures out of {load.calls} calls "
            f"({load.failure or 'no call completed'})"
        )
    if path in LB_PATHS:
        await asyncio.to_thread(check_sample, url, SAMPLE)
    return Cell(
        path=path,
        concurrency=concurrency,
        calls=load.calls,
        seconds=load.seconds,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        front_cpu_us=front_cpu / load.calls * 1e6,
        runner_cpu_us=runner / load.calls * 1e6 if path in LB_PATHS else None,
        client_cpu_us=load.client_cpu / load.calls * 1e6,
    )


async def measure(bench: Bench, path: str, concurrency: int, seconds: float) -> Cell:
    """Run one cell and return its figures."""
    if path == "direct":
        return await measure_direct(bench, concurrency, seconds)
    return await measure_http(bench, path, concurrency, seconds)


async def warm_up(bench: Bench, concurrency: int, seconds: float) -> None:
    """Connect every path, fill caches, let the processes settle; check the LB's answers."""
    await asyncio.to_thread(check_sample, bench.lb_url, SAMPLE)
    for path in bench.paths:
        await measure(bench, path, concurrency, seconds)
    await drive_for(bench.direct.call, seconds / 4, 1)


async def run_benchmark(
    bench: Bench,
    concurrencies: Sequence[int],
    seconds: float,
    repeats: int,
    warmup: float,
    *,
    close: bool = True,
) -> list[Cell]:
    """Warm up, then measure every cell ``repeats`` times, interleaved; keep each cell's best.

    The direct caller is closed at the end unless ``close`` is false.
    """
    try:
        if warmup > 0:
            await warm_up(bench, max(concurrencies), warmup)
        best: dict[tuple[str, int], Cell] = {}
        for repeat in range(repeats):
            for concurrency in concurrencies:
                order = bench.paths if repeat % 2 == 0 else bench.paths[::-1]
                for path in order:
                    cell = await measure(bench, path, concurrency, seconds)
                    key = (path, concurrency)
                    least = min(
                        cell.front_cpu_us,
                        best[key].least_front_cpu_us if key in best else cell.front_cpu_us,
                    )
                    if key not in best or cell.rate > best[key].rate:
                        best[key] = cell
                    best[key].least_front_cpu_us = least
                    print(
                        f"  repeat {repeat + 1}: {path:<7} c={concurrency:<3} "
                        f"{cell.rate:8.0f} calls/s  p50 {cell.p50_ms:6.2f} ms",
                        file=sys.stderr,
                    )
        return [best[(path, c)] for c in concurrencies for path in bench.paths]
    finally:
        if close:
            await bench.direct.close()


#: The paths traced with ``--strace``: the front process is this one (direct) or the LB.
TRACED_PATHS = ("direct", "lb")

#: Per (path, concurrency): the front process's and the runner's system calls.
Traced = dict[tuple[str, int], tuple[SyscallCount, SyscallCount]]


async def trace_cell(
    bench: Bench, path: str, concurrency: int, seconds: float, tool: str = "strace"
) -> tuple[SyscallCount, SyscallCount]:
    """Run one cell with strace counting the front process's and the runner's system calls."""
    front_pid = os.getpid() if path == "direct" else bench.front(path)[0].pid
    # The runner first: strace -f on this process would also trace the second strace.
    with traced(bench.runner.pid, tool) as runner, traced(front_pid, tool) as front:
        if path == "direct":
            calls = len((await drive_for(bench.direct.call, seconds, concurrency))[0])
        else:
            load = await asyncio.to_thread(
                bench.generator.run, bench.front(path)[1], concurrency, seconds
            )
            calls = load.calls
    front.calls = runner.calls = calls
    return front, runner


async def trace_all(
    bench: Bench, concurrencies: Sequence[int], seconds: float, tool: str = "strace"
) -> Traced:
    """A traced cell per traced path and concurrency."""
    traces: Traced = {}
    for concurrency in concurrencies:
        for path in TRACED_PATHS:
            traces[(path, concurrency)] = await trace_cell(bench, path, concurrency, seconds, tool)
    return traces


# --------------------------------------------------------------------------- report

LABELS = {
    "direct": "direct: GrpcRunner.try_exec",
    "lb": f"LB: POST /invoke/{FN_ID}",
    "lb-quiet": "LB, --no-access-log",
    "lb-unsampled": "LB, tracing sampled out",
    "lb-traced": "LB, tracing 100%",
    "ceiling": "generator ceiling",
}


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def print_table(cells: Sequence[Cell]) -> None:
    """One row per path and concurrency."""
    direct = {c.concurrency: c for c in cells if c.path == "direct"}
    header = (
        f"{'path':<27} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'front CPU µs/call':>17} {'runner CPU µs/call':>18} {'client CPU µs/call':>18} "
        f"{'vs direct':>9}"
    )
    print(header)
    print("-" * len(header))
    for c in cells:
        base = direct.get(c.concurrency)
        ratio = "" if base is None or c.path not in LB_PATHS else f"{c.rate / base.rate:.0%}"
        print(
            f"{LABELS[c.path]:<27} {c.concurrency:>4} {c.rate:>8.0f} {c.p50_ms:>7.2f} "
            f"{c.p99_ms:>7.2f} {c.front_cpu_us:>17.0f} {_us(c.runner_cpu_us):>18} "
            f"{_us(c.client_cpu_us):>18} {ratio:>9}"
        )
    print(
        "front = the process in front of the runner: the LB (LB rows), this process (direct), "
        "the trivial server (ceiling); client = the load generator"
    )


def print_syscalls(traces: Traced, tool: str = "strace") -> None:
    """System calls per call of the front process and the runner, from the traced cells."""
    print(f"\nsystem calls per call ({TOOL_LABELS[tool]}; writes = {', '.join(WRITE_CALLS)})")
    header = (
        f"{'path':<27} {'conc':>4} {'front writes':>12} {'front sendto':>12} {'front counted':>13} "
        f"{'runner writes':>13} {'runner counted':>14}"
    )
    print(header)
    print("-" * len(header))
    for (path, concurrency), (front, runner) in sorted(traces.items(), key=lambda kv: kv[0][1]):
        print(
            f"{LABELS[path]:<27} {concurrency:>4} {front.per_call():>12.2f} "
            f"{front.per_call('sendto'):>12.2f} {front.total_per_call:>13.1f} "
            f"{runner.per_call():>13.2f} {runner.total_per_call:>14.1f}"
        )


def print_summary(cells: Sequence[Cell], generator: str) -> None:
    """The LB against the direct path, and the load generator's headroom."""
    by = {(c.path, c.concurrency): c for c in cells}
    concurrencies = sorted({c.concurrency for c in cells})
    print("\nLB against direct, same run:")
    for conc in concurrencies:
        lb, direct = by[("lb", conc)], by[("direct", conc)]
        print(
            f"  c={conc:<3} added latency p50 {lb.p50_ms - direct.p50_ms:+.2f} ms, "
            f"p99 {lb.p99_ms - direct.p99_ms:+.2f} ms; throughput {lb.rate / direct.rate:.0%} "
            f"of direct ({lb.rate:.0f} vs {direct.rate:.0f} calls/s)"
        )
    print("\nThe access log's cost, LB against LB --no-access-log, same run:")
    for conc in concurrencies:
        lb, quiet = by[("lb", conc)], by[("lb-quiet", conc)]
        print(
            f"  c={conc:<3} throughput {lb.rate / quiet.rate:.0%} ({lb.rate:.0f} vs "
            f"{quiet.rate:.0f} calls/s); LB CPU {lb.front_cpu_us - quiet.front_cpu_us:+.0f} "
            f"µs/call; p50 {lb.p50_ms - quiet.p50_ms:+.2f} ms"
        )
    if any(c.path in TRACING_PATHS for c in cells):
        print(
            "\nTracing's cost, LB with tracing against LB (tracing off), same run "
            "(LB CPU: the least per call over the repeats):"
        )
        for conc in concurrencies:
            lb = by[("lb", conc)]
            for path in TRACING_PATHS:
                traced = by[(path, conc)]
                extra = traced.least_front_cpu_us / lb.least_front_cpu_us - 1
                print(
                    f"  c={conc:<3} {LABELS[path]:<24} LB CPU {traced.least_front_cpu_us:.0f} vs "
                    f"{lb.least_front_cpu_us:.0f} µs/call ({extra:+.1%}); throughput "
                    f"{traced.rate / lb.rate:.0%}; p50 {traced.p50_ms - lb.p50_ms:+.2f} ms"
                )
    print(f"\nload generator: {generator}; its ceiling against the trivial server:")
    for conc in concurrencies:
        lb, ceiling = by[("lb", conc)], by[("ceiling", conc)]
        headroom = ceiling.rate / lb.rate
        verdict = "not the bottleneck" if headroom >= 2 else "MAY BE THE BOTTLENECK"
        print(
            f"  c={conc:<3} >= {ceiling.rate:.0f} calls/s, {headroom:.1f}x the LB's rate: {verdict}"
        )


def describe_environment() -> str:
    """Interpreter, machine and library versions."""
    versions = ", ".join(f"{name} {version(name)}" for name in ("uvicorn", "starlette", "grpclib"))
    return (
        f"CPython {platform.python_version()}, {os.cpu_count()} cores, asyncio event loop; "
        f"{versions}"
    )


@contextmanager
def started(
    generator_choice: str, profile_lb: str | None, profile_runner: str | None, tracing: bool
) -> Iterator[tuple[Service, Service, Service, Service, LoadGenerator, dict[str, Service]]]:
    """Start the runner, the LBs, the trivial server and the load generator; stop them all.

    With ``tracing``, also the OTLP sink and an LB per tracing path.
    """
    with ExitStack() as stack:
        runner = start_runner(profile_runner)
        stack.callback(runner.close)
        log = stack.enter_context(tempfile.TemporaryFile())
        lb = start_lb(runner.address, profile_lb, log)
        stack.callback(lb.close)  # stopped before the runner: it drains towards it
        quiet_lb = start_lb(runner.address, None, log, access_log=False)
        stack.callback(quiet_lb.close)
        traced: dict[str, Service] = {}
        if tracing:
            sink = start_otlp_sink()
            stack.callback(sink.close)  # stopped last of these: the LBs export when they stop
            for path, ratio in TRACING_PATHS.items():
                traced[path] = start_lb(
                    runner.address, None, log, env=tracing_env(sink.address, ratio)
                )
                stack.callback(traced[path].close)
        trivial = start_trivial_server()
        stack.callback(trivial.close)
        generator = load_generator(generator_choice)
        stack.callback(generator.close)
        yield runner, lb, quiet_lb, trivial, generator, traced


# --------------------------------------------------------------------------- --workers N
# One LB process against N worker processes (``runnerpool lb --workers N``), both in front of
# the same two runners (so that one runner is not the limit), interleaved in the same run.

WORKER_RUNNERS = 2


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its children (an LB and its workers)."""
    total = process_cpu(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        with suppress(OSError):  # it ended between the two reads
            total += process_cpu(int(child))
    return total


def start_workers_lb(runner_addresses: Sequence[str], workers: int, log: IO[bytes]) -> Service:
    """``runnerpool lb --port 0 --workers N`` with the examples' registry, on every runner."""
    argv = [*python_argv("runnerpool", None), "--log-level", "warning", "lb", "--port", "0"]
    argv += ["--config", str(CONFIG), "--runner-addresses", ",".join(runner_addresses)]
    argv += ["--workers", str(workers)]
    return Service(f"load balancer ({workers} workers)", argv, "load balancer listening on ", log)


@dataclasses.dataclass
class WorkersCell:
    """One measured cell of the workers comparison."""

    workers: int
    concurrency: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    lb_cpu_us: float  # every process of the LB, summed
    runner_cpu_us: float  # both runners, summed
    client_cpu_us: float

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def measure_workers(
    lb: Service,
    workers: int,
    runners: Sequence[Service],
    generator: LoadGenerator,
    concurrency: int,
    seconds: float,
) -> WorkersCell:
    """Drive one LB for ``seconds``; its CPU is its whole process tree's."""
    url = f"{lb.address}/invoke/{FN_ID}"
    lb0, runners0 = tree_cpu(lb.pid), sum(r.cpu() for r in runners)
    load = generator.run(url, concurrency, seconds)
    lb_cpu, runner_cpu = tree_cpu(lb.pid) - lb0, sum(r.cpu() for r in runners) - runners0
    if load.failures or not load.calls:
        raise RuntimeError(
            f"{workers} worker(s) c={concurrency}: {load.failures} failures out of "
            f"{load.calls} calls ({load.failure or 'no call completed'})"
        )
    check_sample(url, SAMPLE)
    return WorkersCell(
        workers=workers,
        concurrency=concurrency,
        calls=load.calls,
        seconds=load.seconds,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        lb_cpu_us=lb_cpu / load.calls * 1e6,
        runner_cpu_us=runner_cpu / load.calls * 1e6,
        client_cpu_us=load.client_cpu / load.calls * 1e6,
    )


def run_workers_compare(
    workers: int,
    generator_choice: str,
    concurrencies: Sequence[int],
    seconds: float,
    repeats: int,
    warmup: float,
) -> list[WorkersCell]:
    """One worker against ``workers`` workers, interleaved in alternating order; best kept."""
    with ExitStack() as stack:
        runners = []
        for _ in range(WORKER_RUNNERS):
            runner = start_runner(None)
            stack.callback(runner.close)
            runners.append(runner)
        addresses = [r.address for r in runners]
        log = stack.enter_context(tempfile.TemporaryFile())
        lbs = {}
        for count in (1, workers):
            lbs[count] = start_workers_lb(addresses, count, log)
            stack.callback(lbs[count].close)  # stopped before the runners: they drain to them
        generator = load_generator(generator_choice)
        stack.callback(generator.close)
        if isinstance(generator, WrkClient):
            seconds = max(1, round(seconds))
        print(describe_environment())
        print(
            f"{seconds:g} s per cell, best of {repeats} interleaved repeats; "
            f"{WORKER_RUNNERS} runners; LB CPU = the LB's processes summed; "
            f"load generator: {generator.name}"
        )
        for count, lb in lbs.items():
            check_sample(f"{lb.address}/invoke/{FN_ID}", SAMPLE)
            if warmup > 0:
                measure_workers(lb, count, runners, generator, max(concurrencies), warmup)
        best: dict[tuple[int, int], WorkersCell] = {}
        for repeat in range(repeats):
            for concurrency in concurrencies:
                order = list(lbs) if repeat % 2 == 0 else list(lbs)[::-1]
                for count in order:
                    cell = measure_workers(
                        lbs[count], count, runners, generator, concurrency, seconds
                    )
                    key = (count, concurrency)
                    if key not in best or cell.rate > best[key].rate:
                        best[key] = cell
                    print(
                        f"  repeat {repeat + 1}: {count} worker(s) c={concurrency:<3} "
                        f"{cell.rate:8.0f} calls/s  LB CPU {cell.lb_cpu_us:5.0f} µs/call",
                        file=sys.stderr,
                    )
        return [best[(count, c)] for c in concurrencies for count in lbs]


def print_workers_table(cells: Sequence[WorkersCell]) -> None:
    """One row per worker count and concurrency, then N workers against one."""
    header = (
        f"{'LB':<14} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'LB CPU µs/call':>14} {'runners CPU µs/call':>19} {'client CPU µs/call':>18}"
    )
    print(header)
    print("-" * len(header))
    for c in cells:
        print(
            f"{f'{c.workers} worker(s)':<14} {c.concurrency:>4} {c.rate:>8.0f} {c.p50_ms:>7.2f} "
            f"{c.p99_ms:>7.2f} {c.lb_cpu_us:>14.0f} {c.runner_cpu_us:>19.0f} "
            f"{c.client_cpu_us:>18.0f}"
        )
    by = {(c.workers, c.concurrency): c for c in cells}
    most = max(c.workers for c in cells)
    print(f"\n{most} workers against one, same run:")
    for conc in sorted({c.concurrency for c in cells}):
        one, many = by[(1, conc)], by[(most, conc)]
        print(
            f"  c={conc:<3} throughput {many.rate / one.rate:.2f}x ({many.rate:.0f} vs "
            f"{one.rate:.0f} calls/s); LB CPU {many.lb_cpu_us:.0f} vs {one.lb_cpu_us:.0f} "
            f"µs/call"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Start the processes, measure every cell and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions; best kept")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per path")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument(
        "--client",
        choices=GENERATORS,
        default="auto",
        help="load generator: wrk, the Python client, or wrk when installed (auto)",
    )
    parser.add_argument(
        "--strace",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="count system calls per call with strace in traced cells of SECONDS (0: off)",
    )
    parser.add_argument(
        "--syscall-tool",
        choices=("strace", "perf"),
        default="strace",
        help="count with strace -c (every call, slows the process) or perf stat (tracepoints)",
    )
    parser.add_argument("--profile-lb", metavar="FILE", help="cProfile the LB into FILE")
    parser.add_argument("--profile-runner", metavar="FILE", help="cProfile the runner into FILE")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="instead: one LB worker against N (runnerpool lb --workers N), two runners",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="add LBs tracing with OpenTelemetry: sampled out, and every call (otel extra)",
    )
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-otlp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_trivial:
        asyncio.run(serve_trivial())
        return
    if args.serve_otlp:
        asyncio.run(serve_trivial(OTLP_RESPONSE))
        return
    if args.client_process:
        serve_client()
        return
    if args.workers is not None:
        started_at = time.perf_counter()
        worker_cells = run_workers_compare(
            args.workers, args.client, args.concurrency, args.seconds, args.repeats, args.warmup
        )
        print()
        print_workers_table(worker_cells)
        print(f"\n(total {time.perf_counter() - started_at:.0f} s)")
        return

    strace_seconds = args.strace
    if strace_seconds > 0:
        missing = strace_available(args.syscall_tool)
        if missing is not None:
            print(missing)
            strace_seconds = 0.0
    traces: Traced = {}
    started_at = time.perf_counter()
    with (
        started(args.client, args.profile_lb, args.profile_runner, args.tracing) as (
            runner,
            lb,
            quiet_lb,
            trivial,
            generator,
            traced,
        ),
        asyncio.Runner() as loop_runner,
    ):
        # wrk runs whole seconds; every path then runs the same time.
        seconds = max(1, round(args.seconds)) if isinstance(generator, WrkClient) else args.seconds
        print(describe_environment())
        print(
            f"{seconds:g} s per cell, best of {args.repeats} interleaved repeats, "
            f"{args.warmup:g} s warm-up per path; runner pid {runner.pid} at {runner.address}, "
            f"LB pid {lb.pid} at {lb.address}; load generator: {generator.name}"
        )

        async def run() -> list[Cell]:
            bench = Bench(
                runner, lb, quiet_lb, trivial, generator, DirectCaller(runner.address), traced
            )
            if strace_seconds > 0:  # the direct caller stays open for the traced cells
                try:
                    cells = await run_benchmark(
                        bench, args.concurrency, seconds, args.repeats, args.warmup, close=False
                    )
                    traces.update(
                        await trace_all(bench, args.concurrency, strace_seconds, args.syscall_tool)
                    )
                finally:
                    await bench.direct.close()
                return cells
            return await run_benchmark(bench, args.concurrency, seconds, args.repeats, args.warmup)

        cells = loop_runner.run(run())
    print()
    print_table(cells)
    if traces:
        print_syscalls(traces, args.syscall_tool)
    print_summary(cells, generator.name)
    print(f"\n(total {time.perf_counter() - started_at:.0f} s)")


if __name__ == "__main__":
    main()
