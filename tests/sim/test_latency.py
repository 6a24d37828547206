"""Simulated runners as bench/replay.py measured real ones: a round trip, an overhead."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import Call, PlacerConfig, RunnerBusyError
from runnerpool.sim import (
    Arrival,
    SimCall,
    SimRunner,
    SimulationSettings,
    run_placer,
    run_virtual,
)

#: The round trip of the tests, seconds.
LATENCY = 0.04


def _burst(latency: float) -> float:
    """Place a long call, then two calls 10 ms apart, on three runners of one call each."""
    runners = [SimRunner(f"r{i}", 128, cold_start=0.5, latency=latency) for i in range(3)]
    arrivals = [
        Arrival(0.0, "f", 128, 10.0),  # the home runner is busy from here on
        Arrival(1.0, "f", 128, 1.0),
        Arrival(1.0 + LATENCY / 4, "f", 128, 1.0),
    ]
    report = run_placer("ch", arrivals, runners, config=PlacerConfig(backoff="release"))
    assert report.placed == 3
    return report.attempts_mean * report.calls


class TestLatency:
    def test_instant_answers_pass_over_a_runner_that_just_refused(self) -> None:
        """With instant answers, the second call of a burst skips the runner that refused.

        The first call is refused by the home runner, which the placer then passes over
        (the ``release`` back-off), and taken by the next; the second call skips the home,
        is refused by the next (full now) and taken by the third: 1 + 2 + 2 offers.
        """
        assert _burst(0.0) == 5

    def test_a_round_trip_lets_a_burst_meet_the_same_refusal(self) -> None:
        """With a round trip, the burst's second call is offered before the NACK is back.

        The placer does not know yet that the home refused the first call, so it offers the
        second call there too: 1 + 2 + 3 offers, as a real load balancer does.
        """
        assert _burst(LATENCY) == 6

    def test_the_runner_decides_half_way_and_the_nack_takes_the_rest(self) -> None:
        """A call is committed half a round trip after its offer; a NACK arrives a full one."""

        async def offer() -> tuple[float | None, float]:
            loop = asyncio.get_running_loop()
            runner = SimRunner("r", 128, cold_start=0.0, latency=LATENCY)
            first = SimCall(Call(id="a", fn_id="f", memory=128), duration=5.0)
            running = loop.create_task(runner.try_exec(first))
            await asyncio.sleep(1.0)
            second = SimCall(Call(id="b", fn_id="g", memory=128), duration=1.0)
            offered = loop.time()
            with pytest.raises(RunnerBusyError):
                await runner.try_exec(second)
            nacked = loop.time() - offered
            await running
            return first.committed_at, nacked

        (committed, nacked), end = run_virtual(offer())
        assert committed == pytest.approx(LATENCY / 2)
        assert nacked == pytest.approx(LATENCY)
        # The first call's end reaches its caller half a round trip after the runner freed.
        assert end == pytest.approx(LATENCY / 2 + 5.0 + LATENCY / 2)

    def test_negative_latency_is_refused(self) -> None:
        """A negative round trip is an error naming the field."""
        with pytest.raises(ValueError, match="latency"):
            SimRunner("r", 128, latency=-0.001)

    def test_settings_give_their_runners_the_round_trip(self) -> None:
        """``SimulationSettings.latency`` reaches every runner; 0 (instant) by default."""
        assert {runner.latency for runner in SimulationSettings(runners=3).make_runners()} == {0.0}
        runners = SimulationSettings(runners=3, latency=0.005).make_runners()
        assert [runner.latency for runner in runners] == [0.005] * 3


class TestOverhead:
    def test_a_call_holds_its_runner_beyond_its_run(self) -> None:
        """With an overhead, a call's memory is held that much longer: the next call waits."""
        arrivals = [Arrival(0.0, "f", 128, 1.0), Arrival(1.05, "g", 128, 1.0)]
        quick = run_placer("ch", arrivals, [SimRunner("r", 128, cold_start=0.0)])
        assert quick.queue_p99 == 0.0
        assert quick.attempts_mean == 1.0
        slow = run_placer("ch", arrivals, [SimRunner("r", 128, cold_start=0.0, overhead=0.1)])
        # The first call holds the runner until 1.1: the second is refused at 1.05 and waits.
        assert slow.attempts_mean > 1.0
        assert slow.queue_p99 == pytest.approx(0.06, abs=0.011)

    def test_negative_overhead_is_refused(self) -> None:
        """A negative overhead is an error naming the field."""
        with pytest.raises(ValueError, match="overhead"):
            SimRunner("r", 128, overhead=-0.1)

    def test_settings_give_their_runners_the_overhead(self) -> None:
        """``SimulationSettings.overhead`` reaches every runner; 0 by default."""
        assert {runner.overhead for runner in SimulationSettings(runners=2).make_runners()} == {0.0}
        runners = SimulationSettings(runners=2, overhead=0.02).make_runners()
        assert [runner.overhead for runner in runners] == [0.02] * 2
