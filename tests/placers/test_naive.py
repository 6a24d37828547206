"""The naive (round-robin) placer: ports of Fn's naive_placer_test.go, and spreading."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import (
    Call,
    FunctionFailedError,
    NaivePlacer,
    PlacerConfig,
    ServerBusyError,
)
from runnerpool._errors import APIError
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy

HALF_SECOND = PlacerConfig(placer_timeout=0.5)


def fn_test_call() -> FakeCall:
    """A call like Fn's tests use: empty model, request deadline two seconds away."""
    return FakeCall(Call()).expire_in(2.0)


class TestFnNaivePlacerScenarios:
    async def test_empty_list_user_error(self) -> None:
        """Port of TestNaivePlacer_EmptyList_UserError: a user's 502 with no runners fails fast."""
        pool = FakeRunnerPool(FunctionFailedError())
        call = fn_test_call()
        with pytest.raises(FunctionFailedError):
            await NaivePlacer().place_call(pool, call)
        assert call.deadline is not None
        assert asyncio.get_running_loop().time() < call.deadline
        assert pool.calls <= 1

    async def test_empty_list_no_error(self) -> None:
        """Port of TestNaivePlacer_EmptyList_NoError: an empty pool gives 503 at the timeout."""
        pool = FakeRunnerPool([])
        call = fn_test_call()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ServerBusyError) as info:
            await NaivePlacer(HALF_SECOND).place_call(pool, call)
        assert info.value.status_code == 503
        assert str(info.value) == "Timed out - server too busy"
        assert loop.time() - start >= 0.5
        assert call.deadline is not None
        assert loop.time() < call.deadline
        assert pool.calls > 1

    async def test_empty_list_with_service_error(self) -> None:
        """Port of TestNaivePlacer_EmptyList_WithServiceError: a 500 does not fail fast."""
        error = APIError("Unable to find the call handle", status_code=500)
        pool = FakeRunnerPool(error)
        call = fn_test_call()
        with pytest.raises(APIError) as info:
            await NaivePlacer(HALF_SECOND).place_call(pool, call)
        assert info.value is error
        assert pool.calls > 1
        assert call.deadline is not None
        assert asyncio.get_running_loop().time() < call.deadline

    async def test_simple_list_user_error(self) -> None:
        """Port of TestNaivePlacer_SimpleList_UserError: two busy passes, then a user error."""
        r1, r2 = FakeRunner("r1", then=busy()), FakeRunner("r2", then=busy())
        pool = FakeRunnerPool(
            FunctionFailedError(), script=[[r1, r2], [r1, r2], ([], FunctionFailedError())]
        )
        with pytest.raises(FunctionFailedError):
            await NaivePlacer(HALF_SECOND).place_call(pool, fn_test_call())
        assert pool.calls == 3
        assert len(r1.attempts) == 2
        assert len(r2.attempts) == 2

    async def test_simple_list_no_error(self) -> None:
        """Port of TestNaivePlacer_SimpleList_NoError: busy runners share attempts within one."""
        r1, r2 = FakeRunner("r1", then=busy()), FakeRunner("r2", then=busy())
        pool = FakeRunnerPool([r1, r2])
        with pytest.raises(ServerBusyError):
            await NaivePlacer(HALF_SECOND).place_call(pool, fn_test_call())
        assert pool.calls > 1
        assert len(r1.attempts) > 1
        assert len(r2.attempts) > 1
        assert abs(len(r1.attempts) - len(r2.attempts)) <= 1


class TestRoundRobin:
    async def test_successive_calls_start_on_successive_runners(self) -> None:
        """Calls that all succeed at once are spread evenly over the runners."""
        runners = [FakeRunner(f"r{i}") for i in range(3)]
        pool = FakeRunnerPool(runners)
        placer = NaivePlacer()
        for _ in range(30):
            await placer.place_call(pool, FakeCall(Call(fn_id="same")))
        assert [len(r.attempts) for r in runners] == [10, 10, 10]

    async def test_each_pass_starts_one_runner_further(self) -> None:
        """After a pass with every runner busy, the next pass starts on the next runner."""
        runners = [FakeRunner(f"r{i}", busy(), busy()) for i in range(3)]
        pool = FakeRunnerPool(runners)
        await NaivePlacer(PlacerConfig(retry_all_delay=0)).place_call(pool, FakeCall())
        order = sorted((a.sequence, i) for i, r in enumerate(runners) for a in r.attempts)
        tried = [i for _, i in order]
        assert tried[:3] == [0, 1, 2]
        assert tried[3:6] == [1, 2, 0]
        assert tried[6] == 2
