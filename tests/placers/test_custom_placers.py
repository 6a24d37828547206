"""Users' own placers: on BasePlacer with another order, or from scratch on PlacerTracker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import pytest

from runnerpool import (
    BasePlacer,
    Call,
    FunctionFailedError,
    PlacerConfig,
    PlacerTracker,
    Runner,
    RunnerCall,
    RunnerPool,
    ServerBusyError,
)
from runnerpool.testing import (
    FakeCall,
    FakeDetachedPlacer,
    FakeRunner,
    FakeRunnerPool,
    busy,
    fail,
    hang,
    refuse,
)
from tests.helpers import counts, register_views


class ReversePlacer(BasePlacer):
    """Tries runners from the last to the first."""

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterable[int]:
        return range(len(runners) - 1, -1, -1)


class FirstRunnerPlacer(BasePlacer):
    """Keeps BasePlacer's default start: linear probing from the first runner."""


class OnePassPlacer:
    """A placer written from scratch on PlacerTracker: one pass, no retries."""

    def __init__(self, config: PlacerConfig) -> None:
        self.config = config

    async def place_call(self, pool: RunnerPool, call: RunnerCall) -> None:
        tracker = PlacerTracker(self.config, call)
        try:
            for runner in await pool.runners(call):
                if tracker.is_done():
                    break
                if await tracker.try_runner(runner, call):
                    return
            raise ServerBusyError
        finally:
            tracker.done()


class TestBasePlacerHooks:
    async def test_runner_order_is_followed(self) -> None:
        """A placer's own order decides which runner is tried first and next."""
        runners = [FakeRunner("a"), FakeRunner("b", busy()), FakeRunner("c", busy())]
        await ReversePlacer().place_call(FakeRunnerPool(runners), FakeCall())
        assert sorted((at.sequence, r.address) for r in runners for at in r.attempts) == [
            (runners[2].attempts[0].sequence, "c"),
            (runners[1].attempts[0].sequence, "b"),
            (runners[0].attempts[0].sequence, "a"),
        ]

    async def test_default_start_is_the_first_runner(self) -> None:
        """BasePlacer's default is linear probing from index 0."""
        runners = [FakeRunner("a", busy()), FakeRunner("b")]
        await FirstRunnerPlacer().place_call(FakeRunnerPool(runners), FakeCall())
        assert [len(r.attempts) for r in runners] == [1, 1]


class TestPlacerTrackerTryRunner:
    async def test_classifies_every_outcome(self) -> None:
        """try_runner records a NACK, a refusal and a success as BasePlacer does."""
        views = register_views()
        runners = [FakeRunner("busy", busy()), FakeRunner("err", refuse()), FakeRunner("ok")]
        await OnePassPlacer(PlacerConfig()).place_call(FakeRunnerPool(runners), FakeCall())
        assert counts(views) == {"attempt": 3, "retry_busy": 1, "retry_error": 1, "placed_ok": 1}

    async def test_committed_error_propagates(self) -> None:
        """A committed failure propagates from try_runner and is counted once."""
        views = register_views()
        runners = [FakeRunner("bad", fail(FunctionFailedError())), FakeRunner("ok")]
        with pytest.raises(FunctionFailedError):
            await OnePassPlacer(PlacerConfig()).place_call(FakeRunnerPool(runners), FakeCall())
        assert counts(views) == {"attempt": 1, "placed_error": 1}
        assert runners[1].attempts == []

    async def test_deadline_aborts_a_committed_call(self) -> None:
        """try_runner bounds the attempt by the request's deadline and counts an abort."""
        views = register_views()
        tracker_placer = OnePassPlacer(PlacerConfig())
        with pytest.raises(TimeoutError):
            await tracker_placer.place_call(
                FakeRunnerPool([FakeRunner("stuck", hang())]), FakeCall().expire_in(0.03)
            )
        assert counts(views) == {"attempt": 1, "placed_abort": 1, "client_timeout": 1}

    async def test_attempts_property(self) -> None:
        """The tracker counts attempts as they start."""
        tracker = PlacerTracker(PlacerConfig(), FakeCall())
        assert tracker.attempts == 0
        await tracker.try_runner(FakeRunner("ok"), FakeCall())
        assert tracker.attempts == 1


class TestFakeDetachedPlacerCancel:
    async def test_cancel_is_counted(self) -> None:
        """Cancelling the fake placer's wait propagates and counts a client cancel."""
        views = register_views()
        placer = FakeDetachedPlacer(PlacerConfig(), 10)
        task = asyncio.create_task(placer.place_call(None, FakeCall(Call(type="detached"))))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert counts(views) == {"attempt": 0, "client_cancelled": 1}
