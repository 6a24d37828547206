"""Placers driving real runners over gRPC: retries, commits, capacity, drain, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from runnerpool import (
    BasePlacer,
    BufferedCall,
    Call,
    CHPlacer,
    FuncError,
    GrpcRunner,
    NaivePlacer,
    PlacerConfig,
    RequestTooLargeError,
    RunnerConnectionError,
    ServerBusyError,
    StaticRunnerPool,
)
from runnerpool.placers._hashing import fn_key_hash, jump_hash
from runnerpool.runner import Capacity
from tests.helpers import counts, register_views
from tests.rpc.conftest import StartRunner, StartScripted, free_port

FAST = PlacerConfig(placer_timeout=0.3, retry_all_delay=0.01)

#: A function id whose consistent-hash home, among two runners, is the first.
FIRST_HOME = next(f"fn-{i}" for i in range(1000) if jump_hash(fn_key_hash(f"fn-{i}"), 2) == 0)


class FirstRunnerFirst(BasePlacer):
    """Every pass starts at the pool's first runner: deterministic for capacity tests."""


PLACERS: dict[str, Callable[[], BasePlacer]] = {
    "ch": lambda: CHPlacer(FAST),
    "naive": lambda: NaivePlacer(FAST),
}


@pytest.fixture(params=sorted(PLACERS))
def placer(request: pytest.FixtureRequest) -> BasePlacer:
    """Each core placer, fresh (the naive one's first pass starts at the first runner)."""
    return PLACERS[request.param]()


def call(image: str, body: bytes = b"", **model: object) -> BufferedCall:
    """A call whose consistent-hash home is the pool's first runner."""
    model.setdefault("timeout", 30)
    return BufferedCall(Call(id="c", fn_id=FIRST_HOME, image=image, **model), body=body)  # type: ignore[arg-type]


async def occupy(address: str, seconds: float) -> asyncio.Task[None]:
    """Start a call that keeps one slot of a runner busy for ``seconds``."""

    async def run() -> None:
        runner = GrpcRunner(address)
        try:
            await runner.try_exec(call("slow", str(seconds).encode()))
        finally:
            await runner.aclose()

    task = asyncio.create_task(run())
    await asyncio.sleep(0.1)
    return task


class TestRetriesAndCommits:
    async def test_nack_then_success_elsewhere(
        self, start_runner: StartRunner, placer: BasePlacer
    ) -> None:
        """The first runner is full and NACKs; the second gets the call with the full body."""
        views = register_views()
        full = await start_runner(capacity=Capacity(max_calls=1))
        free = await start_runner()
        pool = StaticRunnerPool([full.address, free.address])
        busy = await occupy(full.address, 0.5)
        body = b"payload " * 5000
        echo = call("echo", body)
        await placer.place_call(pool, echo)
        assert bytes(echo.response_writer.body) == body
        assert counts(views) == {"attempt": 2, "retry_busy": 1, "placed_ok": 1}
        full_status = await full.service.status()
        assert (full_status.requests_received, full_status.requests_handled) == (2, 0)
        await busy
        await pool.aclose()

    async def test_unavailable_after_try_is_not_retried(
        self, start_runner: StartRunner, start_scripted: StartScripted, placer: BasePlacer
    ) -> None:
        """Unavailable after the TryCall is committed: the next runner gets no TryCall."""
        dying, _ = await start_scripted("unavailable")
        other = await start_runner()
        pool = StaticRunnerPool([dying, other.address])
        with pytest.raises(RunnerConnectionError):
            await placer.place_call(pool, call("echo"))
        assert (await other.service.status()).requests_received == 0
        await pool.aclose()

    async def test_user_502_is_not_retried(
        self, start_runner: StartRunner, placer: BasePlacer
    ) -> None:
        """A function's 502 is final: the next runner gets no TryCall."""
        first, second = await start_runner(), await start_runner()
        pool = StaticRunnerPool([first.address, second.address])
        with pytest.raises(FuncError) as info:
            await placer.place_call(pool, call("fail"))
        assert info.value.status_code == 502
        assert (await second.service.status()).requests_received == 0
        await pool.aclose()

    async def test_all_busy_gives_503_after_the_placer_timeout(
        self, start_runner: StartRunner, placer: BasePlacer
    ) -> None:
        """Every runner full until the placer timeout: 503, after about that timeout."""
        servers = [await start_runner(capacity=Capacity(max_calls=1)) for _ in range(2)]
        busy = [await occupy(s.address, 1.0) for s in servers]
        pool = StaticRunnerPool([s.address for s in servers])
        start = time.monotonic()
        with pytest.raises(ServerBusyError):
            await placer.place_call(pool, call("echo"))
        assert time.monotonic() - start >= 0.3
        await asyncio.gather(*busy)
        await pool.aclose()

    async def test_unreachable_runner_is_skipped(
        self, start_runner: StartRunner, placer: BasePlacer
    ) -> None:
        """A runner with nothing listening is passed over (a retry error, not a failure)."""
        views = register_views()
        live = await start_runner()
        pool = StaticRunnerPool([f"127.0.0.1:{await free_port()}", live.address])
        echo = call("echo", b"hi")
        await placer.place_call(pool, echo)
        assert bytes(echo.response_writer.body) == b"hi"
        assert counts(views) == {"attempt": 2, "retry_error": 1, "placed_ok": 1}
        await pool.aclose()

    async def test_closed_runner_is_skipped(self, start_runner: StartRunner) -> None:
        """A closed runner refuses without contacting its server; the next one runs the call."""
        first, second = await start_runner(), await start_runner()
        pool = StaticRunnerPool([first.address, second.address])
        closed = (await pool.runners(call("x")))[0]
        await closed.aclose()
        await FirstRunnerFirst(FAST).place_call(pool, call("echo"))
        assert (await first.service.status()).requests_received == 0
        assert (await second.service.status()).requests_handled == 1
        await pool.aclose()

    async def test_detached_acknowledged_at_start(
        self, start_runner: StartRunner, placer: BasePlacer
    ) -> None:
        """A detached call sees 202 as soon as it starts, and completes later."""
        server = await start_runner()
        pool = StaticRunnerPool([server.address])
        detached = call("slow", b"0.3", type="detached")
        task = asyncio.create_task(placer.place_call(pool, detached))
        await asyncio.sleep(0.15)
        assert detached.response_writer.status_code == 202
        assert not task.done()
        await task
        assert detached.response_writer.body == b""
        await pool.aclose()

    async def test_oversized_request(self, start_runner: StartRunner, placer: BasePlacer) -> None:
        """A body over the runner's limit is refused with 413, and not retried."""
        server = await start_runner(max_request_size=1000)
        pool = StaticRunnerPool([server.address])
        with pytest.raises(FuncError) as info:
            await placer.place_call(pool, call("echo", b"x" * 5000))
        assert (info.value.status_code, info.value.message) == (413, RequestTooLargeError().message)
        await pool.aclose()


class TestCapacity:
    async def test_exactly_capacity_runs_and_counters_reconcile(
        self, start_runner: StartRunner
    ) -> None:
        """8 calls at once on a runner of 3: 3 run there, 5 are NACKed and run on the other."""
        views = register_views()
        small = await start_runner(capacity=Capacity(max_calls=3))
        large = await start_runner()
        pool = StaticRunnerPool([small.address, large.address])
        placer = FirstRunnerFirst(PlacerConfig(placer_timeout=5))
        calls = [call("slow", b"0.3") for _ in range(8)]
        await asyncio.gather(*(placer.place_call(pool, c) for c in calls))
        assert all(bytes(c.response_writer.body) == b"slept 0.3s" for c in calls)
        small_status = await small.service.status()
        large_status = await large.service.status()
        assert (small_status.requests_received, small_status.requests_handled) == (8, 3)
        assert (large_status.requests_received, large_status.requests_handled) == (5, 5)
        assert small_status.active_request_count == large_status.active_request_count == 0
        assert views.retry_busy_count.value() == 5
        assert views.placed_ok_count.value() == 8
        await pool.aclose()


class TestDrain:
    async def test_in_flight_finish_new_calls_go_elsewhere(self, start_runner: StartRunner) -> None:
        """Draining: the call in flight completes, new calls are NACKed and placed elsewhere."""
        draining = await start_runner()
        other = await start_runner()
        pool = StaticRunnerPool([draining.address, other.address])
        placer = FirstRunnerFirst(PlacerConfig(placer_timeout=5))
        in_flight = call("slow", b"0.4")
        first = asyncio.create_task(placer.place_call(pool, in_flight))
        await asyncio.sleep(0.1)
        closing = asyncio.create_task(draining.aclose())
        await asyncio.sleep(0.05)
        later = [call("echo", b"later") for _ in range(3)]
        await asyncio.gather(*(placer.place_call(pool, c) for c in later))
        await first
        await closing
        assert bytes(in_flight.response_writer.body) == b"slept 0.4s"
        assert all(bytes(c.response_writer.body) == b"later" for c in later)
        assert (await other.service.status()).requests_handled == 3
        assert (await draining.service.status()).requests_handled == 1
        # Once closed, the runner is unreachable and skipped.
        after = call("echo", b"after")
        await placer.place_call(pool, after)
        assert bytes(after.response_writer.body) == b"after"
        await pool.aclose()


@pytest.fixture
def runner_process() -> Iterator[Callable[[], tuple[subprocess.Popen[str], str]]]:
    """Start `runnerpool runner` processes on free ports; all are killed at the end."""
    processes: list[subprocess.Popen[str]] = []

    def start() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "runnerpool", "--log-level", "warning", "runner", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("runner listening on "), line
        return process, line.removeprefix("runner listening on ").strip()

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


class TestRunnerProcess:
    async def test_killed_mid_call_is_a_committed_error(
        self,
        start_runner: StartRunner,
        runner_process: Callable[[], tuple[subprocess.Popen[str], str]],
    ) -> None:
        """A runner process killed mid-call gives a committed error; nothing is retried."""
        process, address = runner_process()
        other = await start_runner()
        pool = StaticRunnerPool([address, other.address])
        placer = FirstRunnerFirst(PlacerConfig(placer_timeout=5))
        task = asyncio.create_task(placer.place_call(pool, call("slow", b"5")))
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        with pytest.raises(RunnerConnectionError):
            await task
        assert (await other.service.status()).requests_received == 0
        # Once the process is gone, the next call skips the dead runner. (While it dies, its
        # listening socket may still accept a connection: that call would be committed.)
        await asyncio.to_thread(process.wait, 10)
        survivor = call("echo", b"next")
        await placer.place_call(pool, survivor)
        assert bytes(survivor.response_writer.body) == b"next"
        await pool.aclose()

    async def test_sigterm_drains(
        self, runner_process: Callable[[], tuple[subprocess.Popen[str], str]]
    ) -> None:
        """SIGTERM lets the call in flight finish, then the process exits 0."""
        process, address = runner_process()
        runner = GrpcRunner(address)
        slow = call("slow", b"0.5")
        task = asyncio.create_task(runner.try_exec(slow))
        await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        await task
        assert bytes(slow.response_writer.body) == b"slept 0.5s"
        assert await asyncio.to_thread(process.wait, 10) == 0
        await runner.aclose()
