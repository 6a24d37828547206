"""FDK benchmark: Fn FDK functions as hot processes, through the runner against the socket.

The function is ``examples/echo`` (it answers its 5-byte body ``hello`` and prints one line)
under Fn's real ``fdk`` package, in an environment built here from the wheelhouse. Paths, all
driven from this process, one call at a time:

* ``direct``: the floor. An FDK process started as the runner starts one (``FdkProcess.start``:
  the bundle's interpreter running ``_launch.py``, Fn's environment, readiness by the
  ``lsnr.sock`` symlink), called with ``POST /call`` over its socket by the runner's own raw
  HTTP/1.1 client (``UdsConnection``, one kept-alive connection) with the headers the runner
  sends (``Content-Type``, ``Fn-Call-Id``, ``Fn-Deadline``).
* ``executor``: ``FdkExecutor.admit`` and ``FdkExecutor.execute`` in this process, as a runner
  runs an admitted call (a ``BufferedResponse`` as the writer): the executor's own cost.
* ``sandbox``: the same executor with each process in its sandbox (``Sandbox.detect()``:
  bubblewrap namespaces, a uid per app, cgroup limits), against ``executor`` in the same run;
  ``direct-sandbox``: the floor's process in its sandbox, against ``direct``.
* ``runner``: the whole runner. ``python -m runnerpool runner --bundles examples`` in its own
  process; per call a new ``BufferedCall`` goes through ``GrpcRunner.try_exec`` (one HTTP/2
  connection, Fn's ``Engage`` exchange): the gRPC transport, ``RunnerService`` and the executor
  (``--no-sandbox``: the sandbox's cost is the ``sandbox`` row's).

Every response is checked to be 200 ``hello``. Warm: the function's hot process (one per path)
answers. Cold: a call arriving when no process of its slot key exists, to its response: the
spawn, readiness, the connection and the first call (which imports ``func.py``); each cold
call has a fresh slot key (a config value of its own) and ``idle_timeout`` 1 s, so its process
is gone before the next round (``direct`` stops its own). ``start-to-ready`` is the FDK's own
start: the same command and environment spawned with ``subprocess.Popen``, ``lsnr.sock``
polled every 0.2 ms, spawn to ready.

Rounds: each round takes one cold sample per path and one start-to-ready sample (in alternating
order), waits until the cold processes are gone, then ``--warm`` warm calls per path (in
alternating order), so machine noise hits paths alike and no process is killed while calls are
timed. Warm-up first (``--warmup`` calls per path, and a cold call each). Reported: p50 and
p99 of warm and cold latency (with few cold samples p99 is about the maximum), the p50
overhead over ``direct``, cold start against the median start-to-ready, and CPU per warm call
of this process and of the runner process (``/proc/<pid>/stat``, clock ticks of 10 ms). The
issue's targets: warm overhead <= 0.3 ms p50 over the direct socket call; cold start <= 1.3x
the FDK's start-to-ready; through the sandbox, a warm call adds <= 0.05 ms p50 over
``executor``, and cold start stays <= 1.3x. Processes are stopped at the end, also on error.

Profiling: ``--profile FILE`` profiles this process during the ``executor`` warm calls;
``--profile-runner FILE`` runs the runner under ``cProfile`` (written when it stops).

Run: ``python -m bench.fdk`` (``--help`` for the knobs; about 40 s with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import itertools
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Protocol

from bench.engage import process_cpu
from bench.grpc_stacks import ROOT, percentile
from bench.lb import Service, python_argv
from runnerpool import BufferedCall, BufferedResponse, Call, GrpcRunner
from runnerpool.fdk import Bundle, Bundles, Environments, FdkExecutor, process_config
from runnerpool.fdk._http import UdsConnection
from runnerpool.fdk._output import OutputSink
from runnerpool.fdk._process import FdkProcess, launch_command
from runnerpool.fdk._sandbox import Sandbox
from runnerpool.runner import Capacity, Execution

PATHS = ("direct", "direct-sandbox", "executor", "sandbox", "runner")
LABELS = {
    "direct": "direct socket (floor)",
    "direct-sandbox": "direct, sandboxed",
    "executor": "FdkExecutor.execute",
    "sandbox": "executor, sandboxed",
    "runner": "GrpcRunner.try_exec",
}
#: Each sandboxed path and the path it is compared with.
SANDBOXED = {"direct-sandbox": "direct", "sandbox": "executor"}
EXAMPLES = ROOT / "examples"
IMAGE = "echo"
BODY = b"hello"
CONTENT_TYPE = "text/plain"
MEMORY_MB = 128
TARGET_WARM_OVERHEAD_MS = 0.3  # p50 over the direct socket call
TARGET_COLD_RATIO = 1.3  # cold start over the FDK's start-to-ready
TARGET_SANDBOX_WARM_MS = 0.05  # p50 of a warm call in the sandbox over one without
READY_POLL = 0.0002  # seconds between looks for lsnr.sock in the start-to-ready probe
READY_TIMEOUT = 10.0
SETTLE_TIMEOUT = 10.0  # seconds for cold processes to expire (idle_timeout 1 s)


# --------------------------------------------------------------------------- paths


def call_model(call_id: str, cold: int | None = None) -> Call:
    """The echo call, as a load balancer sends it; a cold one has a slot key of its own."""
    return Call(
        id=call_id,
        app_id="bench",
        fn_id="echo",
        image=IMAGE,
        timeout=30,
        idle_timeout=30 if cold is None else 1,
        memory=MEMORY_MB,
        config={} if cold is None else {"BENCH_COLD": str(cold)},
        headers={"Content-Type": [CONTENT_TYPE]},
    )


def check(status: int | None, body: bytes) -> None:
    """Fail loudly unless the function echoed the body with status 200."""
    if status != 200 or body != BODY:
        raise RuntimeError(f"unexpected response: {status} {body[:200]!r}")


class NullLog:
    """A call's stderr that keeps nothing."""

    def write(self, data: bytes) -> int:
        """Drop the function's output."""
        return len(data)


async def request_body() -> AsyncIterator[bytes]:
    """The request body, as the runner's service streams it to the executor."""
    yield BODY


async def wait_for(done: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``done`` every 20 ms until it is true, or fail after :data:`SETTLE_TIMEOUT`."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not await done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} still not done after {SETTLE_TIMEOUT} s")
        await asyncio.sleep(0.02)


class BenchPath(Protocol):
    """One way of calling the function."""

    name: str

    async def warm(self) -> None:
        """One call to the path's hot process."""

    async def cold(self, number: int) -> None:
        """One call that finds no process of its slot key (``number`` makes the key)."""

    async def settle(self) -> None:
        """Wait until the cold calls' processes are gone (untimed)."""

    def server_cpu(self) -> float:
        """CPU seconds used so far by the path's server process (0 if it has none)."""

    async def close(self) -> None:
        """Stop what the path started."""


class DirectPath:
    """The floor: FDK processes started as the runner does, called over their sockets.

    Args:
        python: The interpreter of the function's environment.
        bundle: The function.
        iofs_root: Where the processes' socket directories go.
        sandbox: The sandbox its processes run in, if any.
    """

    name = "direct"

    def __init__(
        self, python: Path, bundle: Bundle, iofs_root: Path, sandbox: Sandbox | None = None
    ) -> None:
        self.name = "direct" if sandbox is None else "direct-sandbox"
        self.sandbox = sandbox
        self.python = python
        self.bundle = bundle
        self.iofs_root = iofs_root
        self.ids = itertools.count()
        self.process: FdkProcess | None = None
        self.connection: UdsConnection | None = None
        self.cold_processes: list[FdkProcess] = []

    async def start(self, cold: int | None) -> FdkProcess:
        """Start one process as the runner does; return once it listens."""
        return await FdkProcess.start(
            python=self.python,
            bundle=self.bundle,
            env=process_config(call_model("start", cold)),
            iofs_root=self.iofs_root,
            slot_key=b"bench",
            memory_mb=MEMORY_MB,
            memory_limit=True,
            init_timeout=READY_TIMEOUT,
            output=OutputSink(None, "bench", "echo", self.name),
            sandbox=self.sandbox,
            app_id="bench",
        )

    async def post(self, connection: UdsConnection) -> None:
        """One call, with the headers the runner sends."""
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        headers = [
            ("Content-Type", CONTENT_TYPE),
            ("Fn-Call-Id", f"01DIRECT{next(self.ids):018d}"),
            ("Fn-Deadline", deadline.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ]
        response = await connection.post("/call", headers, BODY)
        check(response.status, response.body)

    async def warm(self) -> None:
        """A call to the hot process over the kept-alive connection."""
        if self.process is None:
            self.process = await self.start(None)
        if self.connection is None:
            self.connection = await UdsConnection.open(self.process.socket_path)
        await self.post(self.connection)

    async def cold(self, number: int) -> None:
        """Start a process, connect, call it once (it is stopped by :meth:`settle`)."""
        process = await self.start(number)
        self.cold_processes.append(process)
        connection = await UdsConnection.open(process.socket_path)
        try:
            await self.post(connection)
        finally:
            connection.close()

    async def settle(self) -> None:
        """Stop the cold calls' processes."""
        while self.cold_processes:
            await self.cold_processes.pop().stop()

    def server_cpu(self) -> float:
        """No server process: 0."""
        return 0.0

    async def close(self) -> None:
        """Stop every process."""
        await self.settle()
        if self.connection is not None:
            self.connection.close()
        if self.process is not None:
            await self.process.stop()


class ExecutorPath:
    """``FdkExecutor.admit`` and ``execute`` in this process, as a runner runs a call.

    Args:
        executor: The executor.
        name: The path's name.
    """

    name = "executor"

    def __init__(self, executor: FdkExecutor, name: str = "executor") -> None:
        self.name = name
        self.executor = executor
        self.capacity = Capacity()
        self.ids = itertools.count()

    async def run(self, model: Call) -> None:
        """Admit and execute one call; check its response."""
        ticket = self.executor.admit(model, None, {}, self.capacity)
        if ticket is None:
            raise RuntimeError("the executor refused the call")
        response = BufferedResponse()
        try:
            await self.executor.execute(
                Execution(
                    model=model,
                    extensions={},
                    slot_key=None,
                    body=request_body(),
                    response=response,
                    stderr=NullLog(),
                    deadline=time.monotonic() + model.timeout,
                    detached=False,
                    admission=ticket,
                )
            )
        finally:
            ticket.release()
        check(response.status_code, bytes(response.body))

    async def warm(self) -> None:
        """A call that finds the hot process idle."""
        await self.run(call_model(f"01EXEC{next(self.ids):020d}"))

    async def cold(self, number: int) -> None:
        """A call of a slot key with no process."""
        await self.run(call_model(f"01EXEC{next(self.ids):020d}", number))

    async def settle(self) -> None:
        """Wait until only the hot process is left (the others expire after 1 s)."""

        async def one_left() -> bool:
            return len(self.executor.pool.processes) <= 1

        await wait_for(one_left, "the executor's cold processes expired")

    def server_cpu(self) -> float:
        """The executor runs in this process: 0."""
        return 0.0

    async def close(self) -> None:
        """Stop the executor's processes."""
        await self.executor.aclose()


class RunnerPath:
    """``GrpcRunner.try_exec`` to a ``runnerpool runner --bundles`` process.

    Args:
        runner: The runner process.
    """

    name = "runner"

    def __init__(self, runner: Service) -> None:
        self.service = runner
        self.runner = GrpcRunner(runner.address)
        self.ids = itertools.count()

    async def run(self, model: Call) -> None:
        """One Engage exchange; check its response."""
        call = BufferedCall(model, body=BODY)
        await self.runner.try_exec(call)
        check(call.response_writer.status_code, bytes(call.response_writer.body))

    async def warm(self) -> None:
        """A call that finds the runner's hot process idle."""
        await self.run(call_model(f"01RUNR{next(self.ids):020d}"))

    async def cold(self, number: int) -> None:
        """A call of a slot key with no process on the runner."""
        await self.run(call_model(f"01RUNR{next(self.ids):020d}", number))

    async def settle(self) -> None:
        """Wait until the runner has only the hot process left."""

        async def one_left() -> bool:
            status = await self.runner.status()
            return int(status.custom_status.get("processes", "0")) <= 1

        await wait_for(one_left, "the runner's cold processes expired")

    def server_cpu(self) -> float:
        """CPU seconds of the runner process."""
        return process_cpu(self.service.pid)

    async def close(self) -> None:
        """Close the connection (the runner process is stopped by its owner)."""
        await self.runner.aclose()


# --------------------------------------------------------------------------- start-to-ready


def start_to_ready(python: Path, bundle: Bundle, iofs_root: Path) -> float:
    """Spawn the FDK as the runner does and return the seconds until ``lsnr.sock`` is ready.

    ``lsnr.sock`` is looked for every 0.2 ms (it exists, as ``os.path.exists`` sees it, once
    the symlink is there and resolves to the socket). The process is killed afterwards.
    """
    directory = Path(tempfile.mkdtemp(prefix="iofs", dir=iofs_root))
    socket_path = directory / "lsnr.sock"
    env = {
        **process_config(call_model("probe", -1)),
        "FN_LISTENER": f"unix:{socket_path}",
        "FN_FORMAT": "http-stream",
        "PYTHONPATH": str(bundle.path),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    argv = launch_command(python, bundle.module, bundle.entrypoint, MEMORY_MB)
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=bundle.path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not os.path.exists(socket_path):
            if process.poll() is not None:
                raise RuntimeError(f"the FDK exited with {process.returncode} before it listened")
            if time.perf_counter() - start > READY_TIMEOUT:
                raise RuntimeError(f"the FDK did not listen within {READY_TIMEOUT} s")
            time.sleep(READY_POLL)
        return time.perf_counter() - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- measurement


@dataclasses.dataclass
class Figures:
    """What one path measured."""

    name: str
    warm: list[float] = dataclasses.field(default_factory=list)
    cold: list[float] = dataclasses.field(default_factory=list)
    cpu: float = 0.0
    server_cpu: float = 0.0

    def warm_ms(self, q: float) -> float:
        """A percentile of warm latency, in ms."""
        return percentile(sorted(self.warm), q) * 1e3

    def cold_ms(self, q: float) -> float:
        """A percentile of cold-start latency, in ms."""
        return percentile(sorted(self.cold), q) * 1e3


@dataclasses.dataclass
class Results:
    """Every path's figures and the FDK's start-to-ready times."""

    paths: list[Figures]
    ready: list[float]

    def ready_ms(self, q: float) -> float:
        """A percentile of start-to-ready, in ms."""
        return percentile(sorted(self.ready), q) * 1e3


async def run_benchmark(
    paths: Sequence[BenchPath],
    probe: Callable[[], float],
    rounds: int,
    warm: int,
    warmup: int,
    profiler: cProfile.Profile | None,
) -> Results:
    """Warm every path up, then measure ``rounds`` rounds (cold, settle, warm)."""
    figures = {path.name: Figures(path.name) for path in paths}
    ready: list[float] = []
    numbers = itertools.count()
    for path in paths:  # start the hot processes, connect, fill caches
        for _ in range(warmup):
            await path.warm()
        await path.cold(next(numbers))
    probe()
    await asyncio.gather(*(path.settle() for path in paths))
    for round_ in range(rounds):
        order = list(paths) if round_ % 2 == 0 else list(paths)[::-1]
        gc.collect()
        if round_ % 2 == 1:
            ready.append(probe())
        for path in order:
            start = time.perf_counter()
            await path.cold(next(numbers))
            figures[path.name].cold.append(time.perf_counter() - start)
        if round_ % 2 == 0:
            ready.append(probe())
        await asyncio.gather(*(path.settle() for path in paths))
        for path in order:
            figure = figures[path.name]
            active = profiler if path.name == "executor" else None
            cpu0, server0 = time.process_time(), path.server_cpu()
            if active is not None:
                active.enable()
            clock = time.perf_counter
            for _ in range(warm):
                start = clock()
                await path.warm()
                figure.warm.append(clock() - start)
            if active is not None:
                active.disable()
            figure.cpu += time.process_time() - cpu0
            figure.server_cpu += path.server_cpu() - server0
        print(f"  round {round_ + 1}/{rounds} done", file=sys.stderr)
    return Results([figures[path.name] for path in paths], ready)


# --------------------------------------------------------------------------- report


def print_table(results: Results) -> None:
    """One row per path, then the FDK's start-to-ready."""
    direct = next((f for f in results.paths if f.name == "direct"), None)
    ready = results.ready_ms(0.50)
    header = (
        f"{'path':<22} {'warm p50':>8} {'warm p99':>8} {'+p50 vs direct':>14} "
        f"{'cold p50':>8} {'cold p99':>8} {'cold/ready':>10} {'CPU µs/call':>11} "
        f"{'runner CPU µs/call':>18}"
    )
    print(header)
    print("-" * len(header))
    for f in results.paths:
        over = "" if direct is None else f"{f.warm_ms(0.50) - direct.warm_ms(0.50):+.3f}"
        runner_cpu = f"{f.server_cpu / len(f.warm) * 1e6:.0f}" if f.name == "runner" else ""
        print(
            f"{LABELS[f.name]:<22} {f.warm_ms(0.50):>8.3f} {f.warm_ms(0.99):>8.3f} {over:>14} "
            f"{f.cold_ms(0.50):>8.1f} {f.cold_ms(0.99):>8.1f} {f.cold_ms(0.50) / ready:>9.2f}x "
            f"{f.cpu / len(f.warm) * 1e6:>11.0f} {runner_cpu:>18}"
        )
    print(
        f"{'FDK start-to-ready':<22} {'':>8} {'':>8} {'':>14} {ready:>8.1f} "
        f"{results.ready_ms(0.99):>8.1f} {1:>9.2f}x"
    )
    print("(latencies in ms; start-to-ready: spawn to lsnr.sock, the FDK's own start)")


def print_targets(results: Results) -> None:
    """The issue's targets, path by path."""
    direct = next((f for f in results.paths if f.name == "direct"), None)
    ready = results.ready_ms(0.50)
    print(
        f"\ntarget: warm overhead <= {TARGET_WARM_OVERHEAD_MS} ms p50 over the direct socket "
        f"call; cold start <= {TARGET_COLD_RATIO}x the FDK's start-to-ready (p50)"
    )
    by_name = {f.name: f for f in results.paths}
    for f in results.paths:
        if f.name == "direct":
            continue
        parts = []
        base = by_name.get(SANDBOXED.get(f.name, ""))
        if base is not None:
            over = f.warm_ms(0.50) - base.warm_ms(0.50)
            met = "met" if over <= TARGET_SANDBOX_WARM_MS else "missed"
            parts.append(
                f"warm {over:+.3f} ms over {LABELS[base.name]} "
                f"(target <= {TARGET_SANDBOX_WARM_MS}): {met}"
            )
        if direct is not None:
            over = f.warm_ms(0.50) - direct.warm_ms(0.50)
            met = "met" if over <= TARGET_WARM_OVERHEAD_MS else "missed"
            parts.append(f"warm +{over:.3f} ms: {met}")
        ratio = f.cold_ms(0.50) / ready
        parts.append(f"cold {ratio:.2f}x: {'met' if ratio <= TARGET_COLD_RATIO else 'missed'}")
        print(f"  {LABELS[f.name]}: {'; '.join(parts)}")


def describe_environment() -> str:
    """Interpreter, machine and library versions."""
    return (
        f"CPython {platform.python_version()}, {os.cpu_count()} cores, asyncio event loop; "
        f"fdk {fdk_version()}, grpclib {version('grpclib')}, httptools {version('httptools')}"
    )


def fdk_version() -> str:
    """The version of the fdk wheel the function runs with."""
    wheels = sorted(default_wheelhouse().glob("fdk-*.whl"))
    return wheels[-1].name.split("-")[1] if wheels else "?"


def default_wheelhouse() -> Path:
    """``$RUNNERPOOL_WHEELHOUSE``, else the venv's ``wheelhouse`` (``make install`` fills it)."""
    return Path(os.environ.get("RUNNERPOOL_WHEELHOUSE") or Path(sys.prefix) / "wheelhouse")


@contextmanager
def runner_process(state: Path, wheelhouse: Path, profile: str | None) -> Iterator[Service]:
    """``runnerpool runner --port 0 --bundles examples``, stopped (SIGTERM) at the end."""
    argv = [*python_argv("runnerpool", profile), "--log-level", "warning", "runner"]
    argv += ["--port", "0", "--bundles", str(EXAMPLES), "--wheelhouse", str(wheelhouse)]
    argv += ["--state-dir", str(state), "--no-sandbox"]
    runner = Service("runner", argv, "runner listening on ")
    try:
        yield runner
    finally:
        runner.close()


async def measure(args: argparse.Namespace, work: Path, runner: Service | None) -> Results:
    """Build the paths, run the benchmark, stop what it started."""
    environments = Environments(work / "envs", find_links=[args.wheelhouse])
    bundle = Bundles(EXAMPLES).resolve(IMAGE)
    python = await environments.prepare(bundle)
    iofs = work / "iofs"
    iofs.mkdir()
    profiler = None if args.profile is None else cProfile.Profile()
    paths: list[BenchPath] = []
    try:
        for name in args.paths:
            if name == "direct":
                paths.append(DirectPath(python, bundle, iofs))
            elif name == "direct-sandbox":
                paths.append(DirectPath(python, bundle, iofs, Sandbox.detect()))
            elif name == "executor":
                executor = FdkExecutor(
                    Bundles(EXAMPLES), environments, iofs_root=iofs, sandbox=None
                )
                paths.append(ExecutorPath(executor))
            elif name == "sandbox":
                executor = FdkExecutor(
                    Bundles(EXAMPLES), environments, iofs_root=iofs, sandbox=Sandbox.detect()
                )
                paths.append(ExecutorPath(executor, "sandbox"))
            else:
                assert runner is not None
                paths.append(RunnerPath(runner))
        return await run_benchmark(
            paths,
            lambda: start_to_ready(python, bundle, iofs),
            args.rounds,
            args.warm,
            args.warmup,
            profiler,
        )
    finally:
        for path in paths:
            await path.close()
        if profiler is not None:
            profiler.dump_stats(args.profile)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the runner, measure every path and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds (cold samples per path)")
    parser.add_argument("--warm", type=int, default=100, help="warm calls per path per round")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up calls per path")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--wheelhouse", type=Path, default=default_wheelhouse())
    parser.add_argument("--profile", metavar="FILE", help="cProfile the executor path into FILE")
    parser.add_argument("--profile-runner", metavar="FILE", help="cProfile the runner into FILE")
    args = parser.parse_args(argv)
    args.paths = [path for path in PATHS if path in args.paths]
    if not any(args.wheelhouse.glob("fdk-*.whl")):
        parser.error(f"no fdk wheel in {args.wheelhouse}: run `make install`")

    print(describe_environment())
    print(
        f"{args.rounds} rounds of one cold call and {args.warm} warm calls per path, "
        f"interleaved; {args.warmup} warm-up calls per path; one call at a time; "
        f"function examples/{IMAGE}, body {BODY!r}"
    )
    started = time.perf_counter()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rp-bench-fdk-")))
        runner = None
        if "runner" in args.paths:
            # The runner shares the state directory: the environment is built once, here.
            with asyncio.Runner() as loop:
                environments = Environments(work / "envs", find_links=[args.wheelhouse])
                loop.run(environments.prepare(Bundles(EXAMPLES).resolve(IMAGE)))
            runner = stack.enter_context(runner_process(work, args.wheelhouse, args.profile_runner))
        with asyncio.Runner() as loop:
            results = loop.run(measure(args, work, runner))
    print()
    print_table(results)
    print_targets(results)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
