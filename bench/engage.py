"""Engage benchmark: runnerpool's LB-to-runner call path against the raw grpclib floor.

One call is one ``Engage`` exchange of Fn's runner protocol, from one load balancer process
(this one) to one runner process, over one HTTP/2 connection, with 1, 16 and 64 asyncio tasks
doing calls back to back. Cases:

* ``floor``: a minimal grpclib client and server doing the same message exchange with no
  runnerpool code (``bench.grpc_stacks``'s grpclib pair): the client sends a ``TryCall`` with
  a ~400-byte Fn call JSON, a 5-byte data frame and an empty ``eof`` frame; the server parses
  the JSON for the call id and answers ``CallResultStart``, one data frame and
  ``CallFinished``. The client builds its three messages once and reuses them. Its server is
  ``python -m bench.grpc_stacks --serve grpclib`` (stubs generated at start with
  ``grpc_tools``); its client uses the message classes runnerpool commits (plain protoc
  output: two copies of ``runner.proto`` cannot share a process's descriptor pool).
* ``GrpcRunner``: runnerpool end to end. The runner is ``python -m runnerpool runner --port 0``
  serving the in-process example ``echo``; here, per call, a new
  ``BufferedCall(Call(...), body=b"hello")`` (the floor's call model, with its own id) goes
  through ``GrpcRunner.try_exec``, and every response is checked to be 200 ``hello``.
  ``--call query`` gives the call a URL with a query string (in the URL and a header), four
  annotations and ``cpus``, as Fn's LB builds a trigger call: the call that missed the old
  codec's fast path (``bench/codec.py`` times the codec alone).
* ``CHPlacer``: the same call through ``CHPlacer().place_call`` over a
  ``StaticRunnerPool([address])`` (its own connection to the same runner): the placer's cost
  on top of ``GrpcRunner``.

For each case and concurrency: calls per second, p50 and p99 latency of a whole call, LB CPU
per call (``time.process_time()`` of this process) and runner CPU per call (utime + stime of
the server process from ``/proc/<pid>/stat``, in clock ticks of 10 ms: read it as +-1%), and
the throughput against the floor's at the same concurrency. Every case is warmed up first;
every cell runs a fixed number of calls; cases are interleaved within each repeat (in
alternating order) so machine noise hits them alike, and the row shown is the repeat with the
best throughput. The issue's target is printed under the table: >= 3 500 calls/s and >= 90%
of the floor at concurrency 16 and 64. Loopback only; both server processes are stopped (or
killed) at the end, also on error.

System calls: ``--strace N`` adds, after the timed cells, one traced cell of N calls per case
and concurrency with ``strace -c -f`` attached to this process (the LB side) and to the server
process, and prints the writes (``sendto``/``write``/``sendmsg``/``writev``) and all system calls
per call on each side. Tracing slows both processes, so traced cells are never timed; without
``strace`` (or ptrace permission) a line says so and the rest runs as usual. strace stops the
process at every system call, so with many calls in flight it batches more than untraced:
``--syscall-tool perf`` counts with ``perf stat`` on the syscall tracepoints instead (no stop;
writes, ``recvfrom`` and ``epoll_wait`` only).

Profiling: ``--profile-runner FILE`` runs the runner under ``cProfile`` and writes its stats
to FILE when it stops; ``--profile-lb FILE`` profiles this process during the runnerpool cells
only. Profiled figures are slower; read the profiles, not the table.

Run: ``python -m bench.engage`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import itertools
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import IO

import grpclib
from google.protobuf import __version__ as protobuf_version
from google.protobuf.internal import api_implementation

from bench._syscalls import TOOL_LABELS, WRITE_CALLS, SyscallCount, strace_available, traced
from bench.grpc_stacks import (
    CALL_JSON,
    ROOT,
    SERVER_START_TIMEOUT,
    Cell,
    GrpclibClient,
    ServerProcess,
    Stubs,
    drive,
    generate_stubs,
    percentile,
)
from runnerpool import BufferedCall, Call, CHPlacer, GrpcRunner, StaticRunnerPool
from runnerpool.rpc._proto import runner_grpc, runner_pb2

CASES = ("floor", "GrpcRunner", "CHPlacer")
CASE_LABELS = {
    "floor": "raw grpclib (floor)",
    "GrpcRunner": "GrpcRunner.try_exec",
    "CHPlacer": "CHPlacer.place_call",
}
IMAGE = "echo"
BODY = b"hello"
TARGET_RATE = 3500.0  # calls/s at concurrency 16-64 (the target)
TARGET_RATIO = 0.90  # of the floor's throughput
TARGET_CONCURRENCIES = (16, 64)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

CallFn = Callable[[], Awaitable[None]]


# --------------------------------------------------------------------------- processes


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        text = stat.read()
    # The command name may hold spaces and parentheses; the fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def read_line(stream: IO[str], timeout: float) -> str | None:
    """The next line of ``stream``, or ``None`` if none came within ``timeout`` seconds."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result and result[0] else None


class RunnerProcess:
    """``python -m runnerpool runner --port 0`` in a child process, optionally profiled."""

    READY = "runner listening on "

    def __init__(self, profile: str | None = None) -> None:
        argv = [sys.executable]
        if profile is not None:
            argv += ["-m", "cProfile", "-o", profile]
        argv += ["-m", "runnerpool", "--log-level", "warning", "runner", "--port", "0"]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert self.proc.stdout is not None
            line = read_line(self.proc.stdout, SERVER_START_TIMEOUT)
            if line is None or not line.startswith(self.READY):
                raise RuntimeError(f"runner did not start: got {line!r}")
            self.address = line[len(self.READY) :].strip()
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        """The runner's process id."""
        return self.proc.pid

    def close(self) -> None:
        """SIGTERM (the runner drains, and a profiled one writes its stats); kill after 15 s."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@contextmanager
def processes(
    cases: Sequence[str], profile_runner: str | None
) -> Iterator[tuple[ServerProcess | None, RunnerProcess | None]]:
    """Start the floor's server and the runner as the cases need; stop both at the end."""
    with ExitStack() as stack:
        floor: ServerProcess | None = None
        runner: RunnerProcess | None = None
        if "floor" in cases:
            stub_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="runnerpool-stubs-"))
            generate_stubs(stub_dir)
            floor = ServerProcess("grpclib", stub_dir, use_uvloop=False)
            stack.callback(floor.close)
        if any(case != "floor" for case in cases):
            runner = RunnerProcess(profile_runner)
            stack.callback(runner.close)
        yield floor, runner


# --------------------------------------------------------------------------- clients


QUERY_URL = "http://127.0.0.1:24082/t/myapp/hello?a=1&a=2"
QUERY_FIELDS = {
    "url": QUERY_URL,
    "cpus": 100,
    "annotations": {
        "example.com/team": '"blue"',
        "example.com/shared": '"fn"',
        "example.com/fnonly": '{"n":1}',
        "fnproject.io/fn/invokeEndpoint": '"http://127.0.0.1:24080/invoke/fn1"',
    },
}


def template_call(kind: str = "plain") -> Call:
    """The floor's call model, for the echo image: a realistic sync call of Fn's LB.

    ``kind`` ``"query"`` adds a query string, annotations and ``cpus`` (:data:`QUERY_FIELDS`).
    """
    call = dataclasses.replace(Call.from_json(CALL_JSON), image=IMAGE)
    if kind == "query":
        headers = {**call.headers, "Fn-Http-Request-Url": [QUERY_URL]}
        call = dataclasses.replace(call, headers=headers, **QUERY_FIELDS)  # type: ignore[arg-type]
    return call


class CallFactory:
    """A fresh ``BufferedCall`` per call, as an LB makes one per request."""

    def __init__(self, kind: str = "plain") -> None:
        template = template_call(kind)
        # Call(**fields) costs a third of dataclasses.replace; maps and lists are shared,
        # which is safe: the LB side never changes them.
        self.fields = {f.name: getattr(template, f.name) for f in dataclasses.fields(Call)}
        self.counter = itertools.count()

    def new(self) -> BufferedCall:
        """A new call with its own id and response."""
        model = Call(**{**self.fields, "id": f"01BENCH{next(self.counter):019d}"})
        return BufferedCall(model, body=BODY)


def check_response(call: BufferedCall) -> None:
    """Fail loudly unless the runner echoed the body with status 200."""
    response = call.response_writer
    if response.status_code != 200 or response.body != BODY:
        raise RuntimeError(
            f"unexpected response: {response.status_code} {bytes(response.body)[:80]!r}"
        )


class RunnerpoolClient:
    """runnerpool's LB side: ``GrpcRunner.try_exec``, or ``CHPlacer.place_call`` on a pool."""

    def __init__(self, address: str, placer: bool, kind: str = "plain") -> None:
        self.calls = CallFactory(kind)
        self.runner: GrpcRunner | None = None
        self.pool: StaticRunnerPool | None = None
        if placer:
            self.pool = StaticRunnerPool([address])
            self.placer = CHPlacer()
        else:
            self.runner = GrpcRunner(address)

    async def call(self) -> None:
        """One Engage exchange, through runnerpool."""
        call = self.calls.new()
        if self.runner is not None:
            await self.runner.try_exec(call)
        else:
            assert self.pool is not None
            await self.placer.place_call(self.pool, call)
        check_response(call)

    async def close(self) -> None:
        """Close the connection."""
        if self.runner is not None:
            await self.runner.aclose()
        if self.pool is not None:
            await self.pool.aclose()


def floor_stubs() -> Stubs:
    """The floor client's stubs: runnerpool's committed protoc output (messages only)."""
    return Stubs(pb2=runner_pb2, pb2_grpc=None, grpclib=runner_grpc)


# --------------------------------------------------------------------------- measurement


@dataclasses.dataclass
class Case:
    """A case's client and the process serving it."""

    name: str
    call: CallFn
    server_pid: int
    close: Callable[[], Awaitable[None]]


async def measure(
    case: Case, calls: int, concurrency: int, profiler: cProfile.Profile | None
) -> Cell:
    """Run one cell and return its figures."""
    gc.collect()
    server_cpu0 = process_cpu(case.server_pid)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        latencies = await drive(case.call, calls, concurrency)
    finally:
        if profiler is not None:
            profiler.disable()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    server_cpu = process_cpu(case.server_pid) - server_cpu0
    latencies.sort()
    return Cell(
        stack=case.name,
        concurrency=concurrency,
        calls=len(latencies),
        seconds=wall,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        client_cpu_us=cpu / len(latencies) * 1e6,
        server_cpu_us=server_cpu / len(latencies) * 1e6,
    )


#: Per (case, concurrency): the LB side's and the server's system calls in a traced cell.
Traced = dict[tuple[str, int], tuple[SyscallCount, SyscallCount]]


async def trace_cell(
    case: Case, calls: int, concurrency: int, tool: str = "strace"
) -> tuple[SyscallCount, SyscallCount]:
    """Run ``calls`` calls with ``tool`` counting this process's and the server's system calls."""
    # The server first: strace -f on this process would also trace the second strace.
    with traced(case.server_pid, tool) as server, traced(os.getpid(), tool) as lb:
        done = len(await drive(case.call, calls, concurrency))
    lb.calls = server.calls = done
    return lb, server


async def run_benchmark(
    cases: Sequence[str],
    floor: ServerProcess | None,
    runner: RunnerProcess | None,
    concurrencies: Sequence[int],
    calls: int,
    repeats: int,
    warmup: int,
    profile_lb: str | None,
    kind: str = "plain",
    strace_calls: int = 0,
    traces: Traced | None = None,
    tool: str = "strace",
) -> list[Cell]:
    """Warm every case up, then measure every cell ``repeats`` times; keep each cell's best.

    With ``strace_calls``, each case then runs one traced cell per concurrency, whose counts
    go into ``traces``.
    """
    built: list[Case] = []
    profiler = None if profile_lb is None else cProfile.Profile()
    try:
        for name in cases:
            if name == "floor":
                assert floor is not None
                client = GrpclibClient(floor_stubs(), floor.port)
                built.append(Case(name, client.call, floor.proc.pid, client.close))
            else:
                assert runner is not None
                ours = RunnerpoolClient(runner.address, placer=name == "CHPlacer", kind=kind)
                built.append(Case(name, ours.call, runner.pid, ours.close))
        for case in built:  # connect, fill caches, let both sides settle
            await drive(case.call, warmup, max(concurrencies))
            await drive(case.call, max(1, warmup // 4), 1)
        best: dict[tuple[str, int], Cell] = {}
        for repeat in range(repeats):
            for concurrency in concurrencies:
                order = built if repeat % 2 == 0 else built[::-1]
                for case in order:
                    cell = await measure(
                        case, calls, concurrency, None if case.name == "floor" else profiler
                    )
                    key = (case.name, concurrency)
                    if key not in best or cell.rate > best[key].rate:
                        best[key] = cell
                    print(
                        f"  repeat {repeat + 1}: {case.name:<10} c={concurrency:<3} "
                        f"{cell.rate:8.0f} calls/s",
                        file=sys.stderr,
                    )
        if strace_calls and traces is not None:
            for concurrency in concurrencies:
                for case in built:
                    traces[(case.name, concurrency)] = await trace_cell(
                        case, strace_calls, concurrency, tool
                    )
        return [best[(case.name, c)] for c in concurrencies for case in built]
    finally:
        for case in built:
            await case.close()
        if profiler is not None and profile_lb is not None:
            profiler.dump_stats(profile_lb)


# --------------------------------------------------------------------------- report


def floor_rates(cells: Sequence[Cell]) -> dict[int, float]:
    """The floor's throughput at each concurrency."""
    return {c.concurrency: c.rate for c in cells if c.stack == "floor"}


def print_table(cells: Sequence[Cell]) -> None:
    """One row per case and concurrency."""
    floors = floor_rates(cells)
    header = (
        f"{'case':<21} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'LB CPU µs/call':>14} {'runner CPU µs/call':>18} {'vs floor':>8}"
    )
    print(header)
    print("-" * len(header))
    for c in cells:
        floor = floors.get(c.concurrency)
        ratio = "" if floor is None else f"{c.rate / floor:.0%}"
        print(
            f"{CASE_LABELS[c.stack]:<21} {c.concurrency:>4} {c.rate:>8.0f} {c.p50_ms:>7.2f} "
            f"{c.p99_ms:>7.2f} {c.client_cpu_us:>14.0f} {c.server_cpu_us:>18.0f} {ratio:>8}"
        )


def print_syscalls(cells: Sequence[Cell], traces: Traced, tool: str = "strace") -> None:
    """System calls per call on each side, from the traced cells."""
    header = (
        f"{'case':<21} {'conc':>4} {'LB writes':>9} {'LB sendto':>9} {'LB counted':>10} "
        f"{'runner writes':>13} {'runner sendto':>13} {'runner counted':>14}"
    )
    print(f"\nsystem calls per call ({TOOL_LABELS[tool]}; writes = {', '.join(WRITE_CALLS)})")
    print(header)
    print("-" * len(header))
    for c in cells:
        counts = traces.get((c.stack, c.concurrency))
        if counts is None:
            continue
        lb, server = counts
        print(
            f"{CASE_LABELS[c.stack]:<21} {c.concurrency:>4} {lb.per_call():>9.2f} "
            f"{lb.per_call('sendto'):>9.2f} {lb.total_per_call:>10.1f} {server.per_call():>13.2f} "
            f"{server.per_call('sendto'):>13.2f} {server.total_per_call:>14.1f}"
        )


def print_targets(cells: Sequence[Cell]) -> None:
    """The issue's target, case by case, at the concurrencies it names."""
    floors = floor_rates(cells)
    lines = []
    for c in cells:
        if c.stack == "floor" or c.concurrency not in TARGET_CONCURRENCIES:
            continue
        floor = floors.get(c.concurrency)
        met = c.rate >= TARGET_RATE and (floor is None or c.rate >= TARGET_RATIO * floor)
        ratio = "" if floor is None else f", {c.rate / floor:.0%} of floor"
        verdict = "met" if met else "missed"
        lines.append(f"  {c.stack} c={c.concurrency}: {c.rate:.0f} calls/s{ratio}: {verdict}")
    print(
        f"\ntarget: >= {TARGET_RATE:.0f} calls/s and >= {TARGET_RATIO:.0%} of the floor "
        f"at concurrency {' and '.join(map(str, TARGET_CONCURRENCIES))}"
    )
    print("\n".join(lines) if lines else "  (no runnerpool cell at those concurrencies)")


def describe_environment() -> str:
    """Interpreter, machine and library versions."""
    return (
        f"CPython {platform.python_version()}, {os.cpu_count()} cores, asyncio event loop; "
        f"grpclib {grpclib.__version__}, protobuf {protobuf_version} "
        f"({api_implementation.Type()})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Start the servers, measure every cell and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="calls per cell")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions; best kept")
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up calls per case")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument(
        "--call",
        choices=("plain", "query"),
        default="plain",
        help="the call model: plain, or with a query string, annotations and cpus",
    )
    parser.add_argument(
        "--strace",
        type=int,
        default=0,
        metavar="N",
        help="count system calls per call with strace in a traced cell of N calls (0: off)",
    )
    parser.add_argument(
        "--syscall-tool",
        choices=("strace", "perf"),
        default="strace",
        help="count with strace -c (every call, slows the process) or perf stat (tracepoints)",
    )
    parser.add_argument("--profile-runner", metavar="FILE", help="cProfile the runner into FILE")
    parser.add_argument("--profile-lb", metavar="FILE", help="cProfile the LB side into FILE")
    args = parser.parse_args(argv)
    cases = [case for case in CASES if case in args.cases]

    print(describe_environment())
    print(
        f"{args.calls} calls per cell, best of {args.repeats} interleaved repeats, "
        f"{args.warmup} warm-up calls per case, {args.call} call; one LB process (this one), "
        "one server process per side, one connection per case"
    )
    strace_calls = args.strace
    if strace_calls:
        missing = strace_available(args.syscall_tool)
        if missing is not None:
            print(missing)
            strace_calls = 0
    traces: Traced = {}
    started = time.perf_counter()
    with (
        processes(cases, args.profile_runner) as (floor, runner),
        asyncio.Runner() as loop_runner,
    ):
        cells = loop_runner.run(
            run_benchmark(
                cases,
                floor,
                runner,
                args.concurrency,
                args.calls,
                args.repeats,
                args.warmup,
                args.profile_lb,
                args.call,
                strace_calls,
                traces,
                args.syscall_tool,
            )
        )
    print()
    print_table(cells)
    if traces:
        print_syscalls(cells, traces, args.syscall_tool)
    print_targets(cells)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
