"""Back-off after a pass in which every runner refused: Fn's fixed wait and exponential jitter."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnerpool import (
    BasePlacer,
    CHPlacer,
    FunctionFailedError,
    NaivePlacer,
    PlacerConfig,
    PlacerRuntime,
    PlacerTracker,
    ServerBusyError,
)
from runnerpool._interfaces import Runner, RunnerCall
from runnerpool.placers._busy import BusyRunners
from runnerpool.placers._tracker import backoff_delay
from runnerpool.sim import VirtualEventLoop, run_virtual, virtual_runtime
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, refuse, succeed
from tests.helpers import counts, register_views


class EndRng(random.Random):
    """An rng whose ``uniform`` returns one end of the interval, recording each ceiling."""

    def __init__(self, end: str = "upper") -> None:
        super().__init__(0)
        self.end = end
        self.ceilings: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.ceilings.append(b)
        return b if self.end == "upper" else a


class NoRng(random.Random):
    """An rng that must not be used."""

    def uniform(self, a: float, b: float) -> float:
        raise AssertionError("the fixed back-off drew a random number")


def exponential(**kwargs: float) -> PlacerConfig:
    """An exponential back-off config: base 10 ms and cap 200 ms unless told otherwise."""
    values: dict[str, Any] = {"retry_all_delay": 0.010, "backoff_max_delay": 0.2}
    values.update(kwargs)
    return PlacerConfig(backoff="exponential", **values)


class TestBackoffDelay:
    @given(
        st.integers(min_value=1, max_value=3000),
        st.floats(min_value=0, max_value=10),
        st.floats(min_value=0, max_value=100),
        st.integers(min_value=0, max_value=2**32),
    )
    def test_within_full_jitter_bounds(self, k: int, base: float, cap: float, seed: int) -> None:
        """Every wait lies in [0, min(cap, base * 2**(k-1))], for any pass, even huge ones."""
        delay = backoff_delay(k, base, cap, random.Random(seed))
        assert 0 <= Fraction(delay) <= min(Fraction(cap), Fraction(base) * 2 ** (k - 1))

    def test_ceiling_doubles_then_stays_at_the_cap(self) -> None:
        """The ceilings are base, 2·base, 4·base, ... until the cap, then the cap."""
        rng = EndRng()
        delays = [backoff_delay(k, 0.010, 0.2, rng) for k in range(1, 9)]
        assert delays == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2]

    def test_jitter_is_spread_over_the_interval(self) -> None:
        """Full jitter: draws cover the whole interval, averaging half the ceiling."""
        rng = random.Random(7)
        draws = [backoff_delay(3, 0.010, 1.0, rng) for _ in range(2000)]
        assert 0 <= min(draws) < 0.002
        assert 0.038 < max(draws) <= 0.04
        assert 0.018 < sum(draws) / len(draws) < 0.022

    def test_no_overflow_and_zero_base(self) -> None:
        """A millionth pass still gives a wait within the cap; a zero base never waits."""
        assert backoff_delay(10**6, 0.010, 0.5, EndRng()) == 0.5
        assert backoff_delay(10**6, 0.0, 0.5, EndRng()) == 0.0

    def test_pass_numbers_start_at_one(self) -> None:
        """Pass 0 is a caller's bug."""
        with pytest.raises(ValueError, match="attempt_pass"):
            backoff_delay(0, 0.010, 1.0, random.Random(0))


class TestFixedMode:
    def test_default_is_fn_and_writes_fn_json(self) -> None:
        """The default back-off is Fn's fixed one, and the default JSON is Fn's, unchanged."""
        config = PlacerConfig()
        assert (config.backoff, config.backoff_max_delay) == ("fixed", 1.0)
        assert config.to_json() == (
            '{"retry_all_delay":10000000,"placer_timeout":360000000000,'
            '"detached_placer_timeout":30000000000}'
        )

    async def test_fixed_mode_ignores_rng_and_cap(self) -> None:
        """Fixed mode waits retry_all_delay every pass: no random draw, the cap has no say."""
        runtime = PlacerRuntime(rng=NoRng())
        runner = FakeRunner("busy", then=busy())
        config = PlacerConfig(placer_timeout=0.1, backoff_max_delay=0.0001)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ServerBusyError):
            await NaivePlacer(config, runtime=runtime).place_call(
                FakeRunnerPool([runner]), FakeCall()
            )
        # 10 ms between passes, not 0.1 ms: at most 11 passes in 100 ms.
        assert 2 <= len(runner.attempts) <= 11
        assert loop.time() - start >= 0.1


def gives_up_after(
    config: PlacerConfig, runner: FakeRunner, deadline_in: float | None = None
) -> float:
    """Place one call on virtual time, every wait at its ceiling; return when the 503 came.

    ``deadline_in``: the call's deadline, that many virtual seconds after it starts.
    """
    loop = VirtualEventLoop()
    placer = NaivePlacer(config, runtime=PlacerRuntime(clock=loop.time, rng=EndRng()))

    async def place() -> float:
        start = loop.time()
        call = FakeCall()
        if deadline_in is not None:
            call.deadline = start + deadline_in
        with pytest.raises(ServerBusyError):
            await placer.place_call(FakeRunnerPool([runner]), call)
        return loop.time() - start

    elapsed, _ = run_virtual(place(), loop)
    return elapsed


class TestExponentialMode:
    async def test_ceilings_follow_the_passes(self) -> None:
        """After pass k the ceiling is min(cap, base * 2**(k-1)); the tracker counts passes."""
        rng = EndRng("lower")  # waits 0: the test takes no time
        runtime = PlacerRuntime(rng=rng)
        runner = FakeRunner("r", *[busy()] * 7)  # refuses 7 passes, takes the 8th
        await NaivePlacer(exponential(), runtime=runtime).place_call(
            FakeRunnerPool([runner]), FakeCall()
        )
        assert len(runner.attempts) == 8
        assert rng.ceilings == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2]

    async def test_far_fewer_passes_than_fixed(self) -> None:
        """Base 10 ms, cap 200 ms, 1 s timeout: a handful of passes, not fixed mode's ~100.

        The expected waits are 5, 10, 20, 40, 80, then 100 ms: about 12 passes fit in 1 s.
        """
        runtime = PlacerRuntime(rng=random.Random(20261127))
        runner = FakeRunner("busy", then=busy())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=1.0), runtime=runtime).place_call(
                FakeRunnerPool([runner]), FakeCall()
            )
        assert 2 <= len(runner.attempts) <= 20

    def test_cap_bounds_each_wait(self) -> None:
        """With every wait at its ceiling and a 50 ms cap, 12 passes fit in 500 ms.

        Waits 10, 20, 40, then 50 ms eight times end at 470 ms; uncapped (10, 20, 40, 80,
        160, 320 ms) only 6 passes would. On virtual time: exact, however loaded the machine.
        """
        runner = FakeRunner("busy", then=busy())
        config = exponential(placer_timeout=0.5, backoff_max_delay=0.05)
        elapsed = gives_up_after(config, runner)
        assert len(runner.attempts) == 12
        assert elapsed == pytest.approx(0.5)

    def test_placer_timeout_is_the_hard_stop(self) -> None:
        """A wait that would end after the placer timeout is cut at the timeout.

        Passes start at 0, 10, 30, 70 and 150 ms; the next wait (160 ms) would end at 310.
        """
        views = register_views()
        runner = FakeRunner("busy", then=busy())
        config = exponential(placer_timeout=0.3, backoff_max_delay=10)
        assert gives_up_after(config, runner) == pytest.approx(0.3)
        assert counts(views) == {"attempt": 5, "retry_busy": 5, "placer_timeout": 1}

    def test_request_deadline_is_a_hard_stop(self) -> None:
        """The request's deadline cuts a long wait too, and counts as the client's timeout."""
        views = register_views()
        runner = FakeRunner("busy", then=busy())
        config = exponential(backoff_max_delay=10)
        elapsed = gives_up_after(config, runner, deadline_in=0.2)
        assert elapsed == pytest.approx(0.2)
        assert counts(views) == {"attempt": 5, "retry_busy": 5, "client_timeout": 1}


class TestMetricsUnchanged:
    """Exponential mode records exactly what the fixed mode records."""

    async def test_empty_list_counts_rp_empty_per_pass(self) -> None:
        """Empty list, no error: one rp_empty per pass, then the placer timeout and 503."""
        views = register_views()
        runtime = PlacerRuntime(rng=random.Random(1))
        pool = FakeRunnerPool([])
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=0.2), runtime=runtime).place_call(
                pool, FakeCall()
            )
        result = counts(views)
        assert result.pop("rp_empty") == pool.calls >= 2
        assert result == {"attempt": 0, "placer_timeout": 1}

    async def test_fail_fast_does_not_wait(self) -> None:
        """A user's 502 with no runners stops after one pass, drawing no wait."""
        views = register_views()
        runtime = PlacerRuntime(rng=NoRng())
        pool = FakeRunnerPool(FunctionFailedError())
        with pytest.raises(FunctionFailedError):
            await NaivePlacer(exponential(placer_timeout=5), runtime=runtime).place_call(
                pool, FakeCall()
            )
        assert pool.calls == 1
        assert counts(views) == {"attempt": 0, "rp_empty": 1, "rp_error": 1}

    async def test_refusals_are_classified_as_before(self) -> None:
        """Busy refusals count retry_busy, other refusals retry_error, one per attempt."""
        views = register_views()
        runtime = PlacerRuntime(rng=random.Random(2))
        b, e = FakeRunner("busy", then=busy()), FakeRunner("err", then=refuse())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=0.2), runtime=runtime).place_call(
                FakeRunnerPool([b, e]), FakeCall()
            )
        result = counts(views)
        assert result.pop("retry_busy") == len(b.attempts) > 1
        assert result.pop("retry_error") == len(e.attempts) > 1
        assert result.pop("attempt") == len(b.attempts) + len(e.attempts)
        assert result == {"placer_timeout": 1}


class PassMarkingPool(FakeRunnerPool):
    """A pool that notes, at each pass's start, the last attempt sequence so far."""

    def __init__(self, runners: Sequence[FakeRunner]) -> None:
        super().__init__(runners)
        self.fake_runners = runners
        self.boundaries: list[int] = []

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """Mark the pass boundary, then answer the runners."""
        sequences = [a.sequence for r in self.fake_runners for a in r.attempts]
        self.boundaries.append(max(sequences, default=-1))
        return await super().runners(call)


CORE_PLACERS: dict[str, Callable[[PlacerConfig, PlacerRuntime], BasePlacer]] = {
    "ch": lambda config, runtime: CHPlacer(config, runtime=runtime),
    "ch-fn": lambda config, runtime: CHPlacer(config, variant="fn", runtime=runtime),
    "naive": lambda config, runtime: NaivePlacer(config, runtime=runtime),
}


class TestOneTryPerPass:
    @pytest.mark.parametrize("mode", ["fixed", "exponential"])
    @pytest.mark.parametrize("name", sorted(CORE_PLACERS))
    async def test_refusing_runners_are_not_retried_in_the_pass(self, name: str, mode: str) -> None:
        """Within one pass, a runner that refused is never tried again; the next pass may."""
        runtime = PlacerRuntime(rng=random.Random(3))
        runners = [FakeRunner(f"busy{i}", then=busy()) for i in range(3)] + [
            FakeRunner(f"err{i}", then=refuse()) for i in range(2)
        ]
        pool = PassMarkingPool(runners)
        config = PlacerConfig(
            retry_all_delay=0.005,
            placer_timeout=0.1,
            backoff="exponential" if mode == "exponential" else "fixed",
        )
        with pytest.raises(ServerBusyError):
            await CORE_PLACERS[name](config, runtime).place_call(pool, FakeCall())
        attempts = sorted((a.sequence, r.address) for r in runners for a in r.attempts)
        bounds = [*pool.boundaries, attempts[-1][0]]
        passes = [
            [address for sequence, address in attempts if low < sequence <= high]
            for low, high in itertools.pairwise(bounds)
        ]
        assert len(passes) == pool.calls >= 2
        for tried in passes:
            assert len(tried) == len(set(tried)), f"a runner was tried twice in a pass: {tried}"
        # Every pass but perhaps the one the timeout cut tried every runner.
        assert all(len(tried) == len(runners) for tried in passes[:-1])


def release(**kwargs: float) -> PlacerConfig:
    """A release back-off config: base 10 ms, cap 1 s and hold 10 s unless told otherwise."""
    values: dict[str, Any] = {"retry_all_delay": 0.010, "release_hold": 10.0}
    values.update(kwargs)
    return PlacerConfig(backoff="release", **values)


def memory_call(memory: int) -> FakeCall:
    """A fake call of ``memory`` MB."""
    call = FakeCall()
    call.model.memory = memory
    return call


class TestBusyRunners:
    def test_held_until_release_or_hold(self) -> None:
        """A refusing runner is held for calls as large, until a release or the hold passes."""
        board = BusyRunners(hold=1.0)
        assert not board.held("a", 0, 0.0)
        board.refused("a", 256, now=0.0)
        assert board.held("a", 256, 0.5)
        assert board.held("a", 512, 0.5)
        assert not board.held("a", 128, 0.5)  # a smaller call may still fit
        assert not board.held("b", 256, 0.5)
        assert not board.held("a", 256, 1.0)  # the hold passed
        board.refused("a", 256, now=2.0)
        board.refused("a", 128, now=2.5)  # the smallest refusal counts, the hold restarts
        assert board.held("a", 128, 3.4)
        board.released("a", 64)
        assert not board.held("a", 128, 3.4)

    async def test_a_release_wakes_one_waiter_the_oldest_that_fits(self) -> None:
        """A release wakes one waiter: the oldest that fits in the memory freed, else the oldest."""
        board = BusyRunners(hold=1.0)
        big = asyncio.create_task(board.wait(1024, 10))
        small = asyncio.create_task(board.wait(128, 10))
        other_small = asyncio.create_task(board.wait(128, 10))
        await asyncio.sleep(0)
        assert board.waiting == 3
        board.released("a", 256)
        await asyncio.sleep(0)
        assert small.done()
        assert small.result() is True
        assert not big.done()
        assert not other_small.done()
        board.released("a", 64)  # nobody fits in 64 MB: the oldest is woken
        await asyncio.sleep(0)
        assert big.done()
        assert big.result() is True
        assert not other_small.done()
        assert board.waiting == 1
        other_small.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other_small
        assert board.waiting == 0
        board.released("a", 64)  # no waiter: nothing to wake, no error

    async def test_a_release_passes_over_a_waiter_whose_wait_just_ended(self) -> None:
        """A waiter cancelled (or timed out) but not yet gone is skipped, not woken twice.

        Its future is done at once, while its task removes it from the waiters only when it
        runs again: a release in between used to raise InvalidStateError in the releasing
        call (found by bench/replay.py on a loaded machine).
        """
        board = BusyRunners(hold=1.0)
        gone = asyncio.create_task(board.wait(128, 10))
        live = asyncio.create_task(board.wait(128, 10))
        await asyncio.sleep(0)
        gone.cancel()  # its future is cancelled now; its task has not run yet
        board.released("a", 256)
        await asyncio.sleep(0)
        assert live.done()
        assert live.result() is True
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert board.waiting == 0
        stale = asyncio.create_task(board.wait(128, 10))
        await asyncio.sleep(0)
        stale.cancel()
        board.released("a", 256)  # only a waiter on its way out: nothing to wake, no error
        with pytest.raises(asyncio.CancelledError):
            await stale

    async def test_wait_times_out(self) -> None:
        """Without a release the wait ends after its time, saying so, and leaves no waiter."""
        board = BusyRunners(hold=1.0)
        assert await board.wait(128, 0.01) is False
        assert board.waiting == 0


class TestReleaseMode:
    """The "release" back-off, in virtual time so that the figures are exact."""

    def test_a_waiting_call_is_woken_by_a_release_not_by_polling(self) -> None:
        """Two runners of one slot, three 1 s calls at once: the third tries twice in all.

        Call 1 takes its home; call 2 is refused there (the home is held) and takes the
        other runner; call 3 passes over the held home, is refused by the other (held
        too), then waits without trying anyone until call 1 ends at 1 s and wakes it.
        """
        runners = [FakeRunner(f"r{i}", capacity=1, then=succeed(delay=1.0)) for i in range(2)]
        loop = VirtualEventLoop()
        placer = CHPlacer(release(), runtime=virtual_runtime(loop, seed=1))
        pool = FakeRunnerPool(runners)
        calls = [FakeCall() for _ in range(3)]

        async def place() -> float:
            await asyncio.gather(*(placer.place_call(pool, call) for call in calls))
            return asyncio.get_running_loop().time()

        end, _ = run_virtual(place(), loop)
        home = placer.start_index(calls[0], 2)
        attempts = [(a.call, a.outcome, a.at) for r in runners for a in r.attempts]
        assert len(attempts) == 5  # 1 + 2 + 2; Fn's fixed 10 ms: about 200
        home_attempts = [(a.call, a.outcome, a.at) for a in runners[home].attempts]
        assert home_attempts == [
            (calls[0], "succeed", 0.0),
            (calls[1], "busy", 0.0),
            (calls[2], "succeed", 1.0),
        ]
        assert [(a.call, a.outcome) for a in runners[1 - home].attempts] == [
            (calls[1], "succeed"),
            (calls[2], "busy"),
        ]
        assert end == pytest.approx(2.0)

    def test_hold_expiry_lets_a_call_try_again(self) -> None:
        """With a 50 ms hold, the waiting call tries again once the hold has passed.

        Its waits are at their ceilings (10, 20, 40, 80, 160, 320 ms, then 640 ms cut by the
        release at 1 s): passes at 10 and 30 ms skip both held runners, and the passes at 70,
        150, 310 and 630 ms each find both holds expired and try both: 1 + 8 + 1 attempts.
        """
        runners = [FakeRunner(f"r{i}", capacity=1, then=succeed(delay=1.0)) for i in range(2)]
        loop = VirtualEventLoop()
        runtime = PlacerRuntime(clock=loop.time, rng=EndRng())
        placer = CHPlacer(release(release_hold=0.05), runtime=runtime)
        pool = FakeRunnerPool(runners)
        calls = [FakeCall() for _ in range(3)]

        async def place() -> None:
            await asyncio.gather(*(placer.place_call(pool, call) for call in calls))

        run_virtual(place(), loop)
        third = [a.at for r in runners for a in r.attempts if a.call is calls[2]]
        assert sorted(third) == pytest.approx(
            [0, 0.07, 0.07, 0.15, 0.15, 0.31, 0.31, 0.63, 0.63, 1]
        )

    def test_placer_timeout_is_the_hard_stop(self) -> None:
        """A runner that never frees: one attempt, then 503 exactly at the placer timeout."""
        views = register_views()
        runner = FakeRunner("full", then=busy())
        loop = VirtualEventLoop()
        runtime = virtual_runtime(loop, seed=3)

        async def place() -> float:
            with pytest.raises(ServerBusyError):
                await NaivePlacer(release(placer_timeout=3.0), runtime=runtime).place_call(
                    FakeRunnerPool([runner]), FakeCall()
                )
            return asyncio.get_running_loop().time()

        end, _ = run_virtual(place(), loop)
        assert end == pytest.approx(3.0)
        assert len(runner.attempts) == 1  # held for 10 s; Fn's fixed back-off: 300 attempts
        assert counts(views) == {"attempt": 1, "retry_busy": 1, "placer_timeout": 1}

    def test_smaller_calls_still_try_a_runner_that_refused_a_larger_one(self) -> None:
        """A runner that refused 1 GB is passed over by calls of 1 GB or more, not smaller ones.

        1 GB is refused; 2 GB is not even tried; 128 MB is tried and refused (the runner is
        now held down to 128 MB); 64 MB is tried and runs, and its end releases the runner,
        so 4 GB is tried at once.
        """
        runner = FakeRunner("r", busy(), busy(), then=succeed())
        loop = VirtualEventLoop()
        placer = NaivePlacer(release(placer_timeout=0.5), runtime=virtual_runtime(loop, seed=4))
        pool = FakeRunnerPool([runner])

        async def place() -> None:
            for memory in (1024, 2048, 128):
                with pytest.raises(ServerBusyError):
                    await placer.place_call(pool, memory_call(memory))
            await placer.place_call(pool, memory_call(64))
            await placer.place_call(pool, memory_call(4096))

        run_virtual(place(), loop)
        assert [a.call.model.memory for a in runner.attempts] == [1024, 128, 64, 4096]

    async def test_fixed_and_exponential_pass_over_no_runner(self) -> None:
        """Only the release mode passes over refusing runners: the others retry each one."""
        # A generous placer timeout: the third attempt succeeds long before it, however loaded
        # the machine (0.05 s failed under a parallel suite).
        for config in (PlacerConfig(placer_timeout=30.0), exponential(placer_timeout=30.0)):
            runner = FakeRunner("r", busy(), busy(), then=succeed())
            await NaivePlacer(config).place_call(FakeRunnerPool([runner]), FakeCall())
            assert [a.outcome for a in runner.attempts] == ["busy", "busy", "succeed"]

    async def test_try_runner_reports_releases(self) -> None:
        """A hand-written placer's PlacerTracker.try_runner marks and releases runners too."""
        board = BusyRunners(hold=10.0)
        config = release()
        busy_runner, free_runner = FakeRunner("a", then=busy()), FakeRunner("b")
        tracker = PlacerTracker(config, FakeCall(), busy=board)
        assert await tracker.try_runner(busy_runner, FakeCall()) is False
        assert tracker.passes_over(busy_runner, FakeCall())
        assert not tracker.passes_over(free_runner, FakeCall())
        assert await tracker.try_runner(free_runner, FakeCall()) is True
        board.refused("b", 0, now=0.0)
        tracker = PlacerTracker(config, FakeCall(), busy=board)
        assert await tracker.try_runner(FakeRunner("b"), FakeCall()) is True
        assert not board.held("b", 0, 0.0)
