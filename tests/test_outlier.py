"""Outlier ejection: counting failures, back-off, panic threshold, probes, and the placers' skip."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from runnerpool import (
    Call,
    CHPlacer,
    NoRunnerReachableError,
    OutlierPolicy,
    PlacerConfig,
    RunnerUnavailableError,
    StaticRunnerPool,
)
from runnerpool.lb._agent import LBAgent
from runnerpool.lb._app import create_app
from runnerpool.lb._registry import Registry
from runnerpool.pools import OutlierDetector
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, refuse, succeed


async def never(address: str) -> object:
    """A probe that always fails."""
    raise ConnectionRefusedError(address)


def detector(count: int = 4, **policy: float) -> OutlierDetector:
    """A detector of ``count`` runners named r0, r1, ... that never probes by itself."""
    return OutlierDetector([f"r{i}" for i in range(count)], never, OutlierPolicy(**policy))  # type: ignore[arg-type]


class TestPolicy:
    @pytest.mark.parametrize(
        "field", ["eject_after", "base_ejection", "probe_interval", "probe_timeout"]
    )
    def test_non_positive_values_are_refused(self, field: str) -> None:
        """A zero count or duration is a clear error naming the field."""
        with pytest.raises(ValueError, match=field):
            OutlierPolicy(**{field: 0})

    def test_max_below_base_is_refused(self) -> None:
        """The longest back-off cannot be shorter than the first."""
        with pytest.raises(ValueError, match="max_ejection"):
            OutlierPolicy(base_ejection=5, max_ejection=1)


class TestEjection:
    def test_ejected_after_consecutive_failures_only(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A success between failures resets the count; ``eject_after`` in a row ejects, logged."""
        found = detector(eject_after=2)
        health = found.health("r0")
        health.failure("one")
        health.success()
        health.failure("two")
        assert not health.ejected
        with caplog.at_level(logging.WARNING):
            health.failure("three")
        assert health.ejected
        assert health.ejections == 1
        assert "Runner r0 ejected after 2 failure(s) in a row (three)" in caplog.text
        with caplog.at_level(logging.WARNING):
            health.success()
        assert not health.ejected
        assert health.returns == 1
        assert "Runner r0 is back in rotation" in caplog.text

    def test_backoff_doubles_with_failed_probes_up_to_the_cap(self) -> None:
        """Each failed probe of an ejected runner doubles its back-off, up to ``max_ejection``."""
        health = detector(eject_after=1, base_ejection=1, max_ejection=5).health("r0")
        health.failure("down")
        waits = [health.backoff]
        for _ in range(4):
            health.probe_failed("still down")
            waits.append(health.backoff)
        assert waits == [1, 2, 4, 5, 5]

    def test_panic_threshold_ignores_ejection(self) -> None:
        """With more than half the runners ejected, none counts as ejected for placement."""
        found = detector(4, eject_after=1)
        found.health("r0").failure("x")
        found.health("r1").failure("x")
        assert found.health("r0").ejected
        assert not found.panic
        found.health("r2").failure("x")
        assert found.panic
        assert not any(found.health(f"r{i}").ejected for i in range(3))
        assert found.reachable == 1
        found.health("r2").success()
        assert not found.panic
        assert found.health("r0").ejected

    async def test_probe_brings_an_ejected_runner_back(self) -> None:
        """The background probe returns a runner to rotation once it answers."""
        answers = {"r0": False}

        async def probe(address: str) -> object:
            if not answers[address]:
                raise ConnectionRefusedError(address)
            return "ok"

        found = OutlierDetector(
            ["r0"], probe, OutlierPolicy(eject_after=1, base_ejection=0.05, probe_interval=0.05)
        )
        found.start()
        try:
            for _ in range(100):  # bounded: 100 x 0.02 s
                if found.health("r0").out:
                    break
                await asyncio.sleep(0.02)
            assert found.health("r0").out  # the first probes failed: ejected
            answers["r0"] = True
            for _ in range(100):
                if not found.health("r0").out:
                    break
                await asyncio.sleep(0.02)
            assert not found.health("r0").out
            assert found.health("r0").returns == 1
        finally:
            await found.aclose()

    def test_metrics_per_runner(self) -> None:
        """The collector exposes each runner's state, failures, ejections and returns."""
        found = detector(2, eject_after=1)
        found.health("r1").failure("x")
        samples = {
            (sample.name, tuple(sample.labels.values())): sample.value
            for family in found.collect()
            for sample in family.samples
        }
        assert samples[("runnerpool_runner_ejected", ("r1",))] == 1
        assert samples[("runnerpool_runner_ejected", ("r0",))] == 0
        assert samples[("runnerpool_runner_ejections_total", ("r1",))] == 1
        assert samples[("runnerpool_runners_reachable", ())] == 1


class _Ejectable(FakeRunner):
    ejected = False


class TestPlacersPassOver:
    async def test_ejected_home_is_passed_over_without_an_attempt(self) -> None:
        """An ejected runner is skipped like a NACK; the next in the function's order takes it."""
        runners = [_Ejectable(f"r{i}", then=succeed(b"ok")) for i in range(3)]
        placer = CHPlacer(PlacerConfig(placer_timeout=5))
        call = FakeCall(Call(fn_id="fn1"), body=b"x")
        home = placer.start_index(call, 3)
        runners[home].ejected = True
        await placer.place_call(FakeRunnerPool(runners), call)
        assert runners[home].attempts == []
        assert len(runners[(home + 1) % 3].attempts) == 1

    async def test_no_runner_reachable_stops_at_once(self) -> None:
        """A pass where every runner is ejected or unreachable ends placement with 503 at once."""
        runners = [
            _Ejectable("r0", refuse(RunnerUnavailableError("down"))),
            _Ejectable("r1", then=succeed(b"ok")),
        ]
        runners[1].ejected = True
        placer = CHPlacer(PlacerConfig(placer_timeout=60))
        async with asyncio.timeout(5):
            with pytest.raises(NoRunnerReachableError) as raised:
                await placer.place_call(
                    FakeRunnerPool(runners), FakeCall(Call(fn_id="fn1"), body=b"x")
                )
        assert raised.value.status_code == 503


class TestReadiness:
    async def test_ready_follows_reachable_runners(self) -> None:
        """GET /ready is 200 while a runner is reachable, 503 once every runner is ejected."""
        pool = StaticRunnerPool(["127.0.0.1:1", "127.0.0.1:2"])
        app = create_app(LBAgent(CHPlacer(), pool), Registry([], []))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as client:
            ready = await client.get("/ready")
            assert (ready.status_code, ready.json()) == (
                200,
                {"ready": True, "reachable": 2, "runners": 2},
            )
            for address in ("127.0.0.1:1", "127.0.0.1:2"):
                for _ in range(2):
                    pool.detector.health(address).failure("refused")
            ready = await client.get("/ready")
            assert (ready.status_code, ready.json()) == (
                503,
                {"ready": False, "reachable": 0, "runners": 2},
            )
        await pool.aclose()
