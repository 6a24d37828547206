"""Ports of the placer scenarios of Fn's lb_agent_test.go (spec 9.2), and the fake placer."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import (
    Call,
    NaivePlacer,
    PlacerConfig,
    ServerBusyError,
)
from runnerpool.testing import FakeCall, FakeDetachedPlacer, FakeRunner, FakeRunnerPool, succeed
from tests.helpers import counts, register_views


def mock_runner(address: str, sleep: float, max_calls: int) -> FakeRunner:
    """Fn's mockRunner: busy at max_calls in flight, else sleeps then succeeds."""
    return FakeRunner(address, then=succeed(delay=sleep), capacity=max_calls)


class TestFnLbAgentScenarios:
    async def test_one_runner(self) -> None:
        """Port of TestOneRunner: one runner (10 ms, max 5), a sync call with 1 s, succeeds."""
        pool = FakeRunnerPool([mock_runner("192.0.2.0", 0.01, 5)])
        call = FakeCall(Call(type="sync")).expire_in(1.0)
        await NaivePlacer().place_call(pool, call)
        assert call.response_writer.status_code == 200

    async def test_enforce_timeout_from_context(self) -> None:
        """Port of TestEnforceTimeoutFromContext: an expired deadline fails with no attempt."""
        runner = mock_runner("192.0.2.0", 0.01, 5)
        with pytest.raises(ServerBusyError):
            await NaivePlacer().place_call(FakeRunnerPool([runner]), FakeCall().expire_in(0))
        assert runner.attempts == []

    async def test_detached_placer_timeout(self) -> None:
        """Port of TestDetachedPlacerTimeout: a 400 ms fake placer, a 300 ms detached timeout."""
        views = register_views()
        placer = FakeDetachedPlacer(PlacerConfig(detached_placer_timeout=0.3), 0.4)
        call = FakeCall(Call(type="detached")).expire_in(30)
        with pytest.raises(TimeoutError):
            await placer.place_call(None, call)
        assert counts(views) == {"attempt": 0, "placer_timeout": 1}

    async def test_fake_placer_succeeds_within_its_timeout(self) -> None:
        """The fake placer succeeds when it wakes before the placer timeout."""
        placer = FakeDetachedPlacer(PlacerConfig(detached_placer_timeout=1), 0.01)
        await placer.place_call(None, FakeCall(Call(type="detached")))
        assert placer.config.detached_placer_timeout == 1

    async def test_fake_placer_does_not_blame_itself_for_the_client(self) -> None:
        """When the request's deadline also passed, the fake placer reports no timeout error."""
        placer = FakeDetachedPlacer(PlacerConfig(detached_placer_timeout=0.01), 0.05)
        await placer.place_call(None, FakeCall(Call(type="detached")).expire_in(0.02))

    async def test_enforce_lb_timeout(self) -> None:
        """Port of TestEnforceLbTimeout: 5 calls, 10 ms deadlines, 2 runners of 1: some fail."""
        runners = [mock_runner("r1", 0.01, 1), mock_runner("r2", 0.01, 1)]
        pool = FakeRunnerPool(runners)
        placer = NaivePlacer()
        results = await asyncio.gather(
            *(
                placer.place_call(pool, FakeCall(Call(type="sync")).expire_in(0.01))
                for _ in range(5)
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if r is not None]
        assert failures
        assert all(isinstance(r, ServerBusyError | TimeoutError) for r in failures)
