"""Placement outcomes and metrics: the scenarios of spec 3.2 and the rules of spec 2."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import (
    APIError,
    Call,
    CallTimeoutError,
    FuncError,
    FunctionFailedError,
    NaivePlacer,
    NotPlacedError,
    PlacerConfig,
    ServerBusyError,
)
from runnerpool.sim import VirtualEventLoop, run_virtual, virtual_runtime
from runnerpool.testing import (
    FakeCall,
    FakeRunner,
    FakeRunnerPool,
    busy,
    fail,
    hang,
    refuse,
    succeed,
)
from tests.helpers import counts, latency_ms, register_views

T200 = PlacerConfig(placer_timeout=0.2)

#: With a 10 ms retry delay, a 200 ms placer timeout allows at most 21 passes (Fn saw 20).
MAX_PASSES_200MS = 21


class TestFnMetricScenarios:
    """Spec 3.2, 'Observed metric sets per scenario', with the naive placer."""

    async def test_one_ok_runner(self) -> None:
        """One OK runner: one attempt, placed_ok, latency 0 ms."""
        views = register_views()
        await NaivePlacer().place_call(FakeRunnerPool([FakeRunner("ok")]), FakeCall())
        assert counts(views) == {"attempt": 1, "placed_ok": 1}
        assert latency_ms(views) == 0

    async def test_empty_list_function_failed(self) -> None:
        """Empty list with a user's 502: no attempt, one empty pass, one pool error, at once."""
        views = register_views()
        with pytest.raises(FunctionFailedError, match="function failed"):
            await NaivePlacer().place_call(FakeRunnerPool(FunctionFailedError()), FakeCall())
        assert counts(views) == {"attempt": 0, "rp_empty": 1, "rp_error": 1}

    async def test_empty_list_no_error(self) -> None:
        """Empty list, no error: one rp_empty per pass, then the placer timeout and 503."""
        views = register_views()
        pool = FakeRunnerPool([])
        with pytest.raises(ServerBusyError):
            await NaivePlacer(T200).place_call(pool, FakeCall())
        result = counts(views)
        assert result.pop("rp_empty") == pool.calls
        assert 2 <= pool.calls <= MAX_PASSES_200MS
        assert result == {"attempt": 0, "placer_timeout": 1}
        assert latency_ms(views) >= 200

    async def test_empty_list_call_timeout(self) -> None:
        """Empty list with a user's 504: no fail fast; the 504 is returned at the timeout."""
        views = register_views()
        pool = FakeRunnerPool(CallTimeoutError())
        with pytest.raises(CallTimeoutError, match="Timed out"):
            await NaivePlacer(T200).place_call(pool, FakeCall())
        result = counts(views)
        assert result.pop("rp_empty") == pool.calls > 1
        assert result == {"attempt": 0, "rp_error": 1, "placer_timeout": 1}

    async def test_busy_list_with_pool_error(self) -> None:
        """Busy runners plus a pool error: every pass tries them; the pool's error wins."""
        views = register_views()
        runner = FakeRunner("busy", then=busy())
        pool = FakeRunnerPool(([runner], FunctionFailedError()))
        with pytest.raises(FunctionFailedError):
            await NaivePlacer(T200).place_call(pool, FakeCall())
        result = counts(views)
        assert result["attempt"] == result.pop("retry_busy") > 1
        # Every pass asks the pool first; the timeout may pass before the last pass's attempt.
        assert pool.calls - 1 <= result["attempt"] <= pool.calls
        assert result.pop("attempt") <= MAX_PASSES_200MS
        assert result == {"rp_error": 1, "placer_timeout": 1}

    async def test_one_always_busy_runner(self) -> None:
        """One always-busy runner: a NACK per pass until the placer timeout, then 503."""
        views = register_views()
        runner = FakeRunner("busy", then=busy())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(T200).place_call(FakeRunnerPool([runner]), FakeCall())
        result = counts(views)
        assert result["attempt"] == result.pop("retry_busy") == len(runner.attempts) > 1
        assert result.pop("attempt") <= MAX_PASSES_200MS
        assert result == {"placer_timeout": 1}

    async def test_runner_refusing_with_error(self) -> None:
        """A runner that refuses with a plain error counts retry_error, not retry_busy."""
        views = register_views()
        runner = FakeRunner("err", then=refuse())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(T200).place_call(FakeRunnerPool([runner]), FakeCall())
        result = counts(views)
        assert result["attempt"] == result.pop("retry_error") == len(runner.attempts) > 1
        result.pop("attempt")
        assert result == {"placer_timeout": 1}

    async def test_committed_failure(self) -> None:
        """A runner that takes the call and fails: one attempt, placed_error, no retry."""
        views = register_views()
        other = FakeRunner("other")
        pool = FakeRunnerPool([FakeRunner("bad", then=fail(FunctionFailedError())), other])
        placer = NaivePlacer()
        with pytest.raises(FunctionFailedError):
            await placer.place_call(pool, FakeCall())
        assert counts(views) == {"attempt": 1, "placed_error": 1}
        assert other.attempts == []

    async def test_client_cancel(self) -> None:
        """Client cancel at 100 ms: NACKs until then, client_cancelled, no placer timeout."""
        views = register_views()
        runner = FakeRunner("busy", then=busy())
        task = asyncio.create_task(
            NaivePlacer(PlacerConfig(placer_timeout=10)).place_call(
                FakeRunnerPool([runner]), FakeCall()
            )
        )
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        result = counts(views)
        assert result["attempt"] == result.pop("retry_busy") == len(runner.attempts) >= 1
        result.pop("attempt")
        assert result == {"client_cancelled": 1}

    async def test_client_deadline(self) -> None:
        """Client deadline at 100 ms: NACKs until then, client_timeout, 503."""
        views = register_views()
        runner = FakeRunner("busy", then=busy())
        with pytest.raises(ServerBusyError):
            await NaivePlacer().place_call(FakeRunnerPool([runner]), FakeCall().expire_in(0.1))
        result = counts(views)
        assert result["attempt"] == result.pop("retry_busy") == len(runner.attempts) >= 1
        result.pop("attempt")
        assert result == {"client_timeout": 1}

    async def test_already_expired(self) -> None:
        """A request already past its deadline: the pool is asked once, nothing is tried."""
        views = register_views()
        runner = FakeRunner("ok")
        pool = FakeRunnerPool([runner])
        with pytest.raises(ServerBusyError):
            await NaivePlacer().place_call(pool, FakeCall().expire_in(0))
        assert pool.calls == 1
        assert runner.attempts == []
        assert counts(views) == {"attempt": 0, "client_timeout": 1}

    async def test_lists_then_user_error(self) -> None:
        """[busy,busy] twice then [] with a user's 502: 3 pool calls, 4 NACKs, fail fast."""
        views = register_views()
        r1, r2 = FakeRunner("r1", then=busy()), FakeRunner("r2", then=busy())
        pool = FakeRunnerPool(script=[[r1, r2], [r1, r2], ([], FunctionFailedError())])
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(FunctionFailedError):
            await NaivePlacer(T200).place_call(pool, FakeCall())
        assert pool.calls == 3
        assert counts(views) == {"attempt": 4, "retry_busy": 4, "rp_empty": 1, "rp_error": 1}
        assert loop.time() - start >= 0.02  # two 10 ms waits, and no third


class TestFailFast:
    """Spec 2.3: all four conditions are needed to stop after one pass."""

    @pytest.mark.parametrize(
        "error",
        [FunctionFailedError(), FuncError("custom user error", status_code=502)],
        ids=["ErrFunctionFailed", "NewFuncError(502)"],
    )
    async def test_user_502_with_no_runners_fails_fast(self, error: Exception) -> None:
        """A FuncError with code 502 and no runners stops after a single pass."""
        pool = FakeRunnerPool(error)
        with pytest.raises(type(error)):
            await NaivePlacer(PlacerConfig(placer_timeout=5)).place_call(pool, FakeCall())
        assert pool.calls == 1

    @pytest.mark.parametrize(
        "answer",
        [
            APIError("not a user error", status_code=502),
            CallTimeoutError(),
            ([FakeRunner("busy", then=busy())], FunctionFailedError()),
        ],
        ids=["plain-502", "FuncError-504", "non-empty-list"],
    )
    async def test_no_fail_fast(self, answer: object) -> None:
        """A plain 502, a user 504, or a 502 with runners keep trying until the timeout."""
        pool = FakeRunnerPool(answer)  # type: ignore[arg-type]
        with pytest.raises(APIError):
            await NaivePlacer(PlacerConfig(placer_timeout=0.1)).place_call(pool, FakeCall())
        assert pool.calls > 1


class TestDeadlines:
    def test_placer_timeout_never_cuts_a_committed_call(self) -> None:
        """A call taken before the placer timeout runs to its end, even long after it.

        On virtual time: the second attempt starts exactly 10 ms in, whatever the load.
        """
        views = register_views()
        runner = FakeRunner("slow", busy(), then=succeed(b"done", delay=0.3))
        call = FakeCall()
        loop = VirtualEventLoop()
        placer = NaivePlacer(
            PlacerConfig(placer_timeout=0.05, retry_all_delay=0.01),
            runtime=virtual_runtime(loop),
        )
        _, end = run_virtual(placer.place_call(FakeRunnerPool([runner]), call), loop)
        assert bytes(call.response_writer.body) == b"done"
        assert end == pytest.approx(0.31)
        assert counts(views) == {"attempt": 2, "retry_busy": 1, "placed_ok": 1}
        # Latency stops where the committing attempt started: the 300 ms run is excluded.
        assert latency_ms(views) == pytest.approx(10)

    async def test_request_deadline_cuts_a_committed_call(self) -> None:
        """A committed call still running at the request's deadline is aborted."""
        views = register_views()
        runner = FakeRunner("stuck", then=hang())
        with pytest.raises(TimeoutError):
            await NaivePlacer().place_call(FakeRunnerPool([runner]), FakeCall().expire_in(0.05))
        assert counts(views) == {"attempt": 1, "placed_abort": 1, "client_timeout": 1}
        assert runner.in_flight == 0

    async def test_cancel_during_a_committed_call(self) -> None:
        """Cancelling a running call propagates, counts an abort and a client cancel."""
        views = register_views()
        runner = FakeRunner("stuck", then=hang())
        task = asyncio.create_task(NaivePlacer().place_call(FakeRunnerPool([runner]), FakeCall()))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert counts(views) == {"attempt": 1, "placed_abort": 1, "client_cancelled": 1}

    async def test_refusal_cut_by_deadline_is_not_a_runner_error(self) -> None:
        """A runner that refuses because the request's deadline interrupted it counts nothing."""
        views = register_views()

        async def refuse_when_interrupted(runner: FakeRunner, call: object) -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                raise NotPlacedError("interrupted before committing") from None

        from runnerpool.testing import Outcome

        runner = FakeRunner("slow-connect", then=Outcome("interrupted", refuse_when_interrupted))
        with pytest.raises(ServerBusyError):
            await NaivePlacer().place_call(FakeRunnerPool([runner]), FakeCall().expire_in(0.05))
        assert counts(views) == {"attempt": 1, "client_timeout": 1}

    async def test_detached_calls_use_the_detached_timeout(self) -> None:
        """A detached call gives up after detached_placer_timeout, not placer_timeout."""
        config = PlacerConfig(placer_timeout=30, detached_placer_timeout=0.1)
        runner = FakeRunner("busy", then=busy())
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ServerBusyError):
            await NaivePlacer(config).place_call(
                FakeRunnerPool([runner]), FakeCall(Call(type="detached"))
            )
        assert 0.1 <= loop.time() - start < 5

    async def test_no_attempt_starts_after_the_deadline_mid_list(self) -> None:
        """Once the placer timeout passes in the middle of a list, no further runner is tried."""
        slow_nack = FakeRunner("slow", then=fail(NotPlacedError("slow refusal"), delay=0.1))
        untouched = FakeRunner("next", then=busy())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(PlacerConfig(placer_timeout=0.05)).place_call(
                FakeRunnerPool([slow_nack, untouched]), FakeCall()
            )
        assert len(slow_nack.attempts) + len(untouched.attempts) <= 2
        assert len(slow_nack.attempts) >= 1


class TestBody:
    async def test_every_attempt_reads_the_whole_body(self) -> None:
        """After a NACK, the next runner reads the full body again from its start."""
        body = bytes(range(256)) * 100
        first = FakeRunner("busy", busy())
        second = FakeRunner("ok")
        call = FakeCall(body=body, chunk_size=1000)
        await NaivePlacer().place_call(FakeRunnerPool([first, second]), call)
        assert [a.body for a in first.attempts + second.attempts] == [body, body]

    async def test_user_execution_time(self) -> None:
        """Execution time reported by a runner accumulates on the call and its model (ns)."""
        call = FakeCall()
        assert call.user_execution_time is None
        runner = FakeRunner("ok", then=succeed(execution_time=0.25))
        await NaivePlacer().place_call(FakeRunnerPool([runner]), call)
        assert call.user_execution_time == 0.25
        assert call.model.execution_duration == 250_000_000
