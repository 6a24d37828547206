"""Back-off after a pass in which every runner refused: Fn's fixed wait and exponential jitter."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Sequence
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnerpool import (
    BasePlacer,
    CHPlacer,
    FunctionFailedError,
    NaivePlacer,
    PlacerConfig,
    PlacerTracker,
    ServerBusyError,
)
from runnerpool._interfaces import Runner, RunnerCall
from runnerpool._tracker import backoff_delay
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, refuse
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


@pytest.fixture
def use_rng(monkeypatch: pytest.MonkeyPatch) -> Callable[[random.Random], None]:
    """Make every tracker draw its back-off from the given rng, for this test only."""

    def use(rng: random.Random) -> None:
        monkeypatch.setattr(PlacerTracker, "backoff_rng", rng)

    return use


def exponential(**kwargs: float) -> PlacerConfig:
    """An exponential back-off config: base 10 ms and cap 200 ms unless told otherwise."""
    values: dict[str, float] = {"retry_all_delay": 0.010, "backoff_max_delay": 0.2}
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

    async def test_fixed_mode_ignores_rng_and_cap(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """Fixed mode waits retry_all_delay every pass: no random draw, the cap has no say."""
        use_rng(NoRng())
        runner = FakeRunner("busy", then=busy())
        config = PlacerConfig(placer_timeout=0.1, backoff_max_delay=0.0001)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ServerBusyError):
            await NaivePlacer(config).place_call(FakeRunnerPool([runner]), FakeCall())
        # 10 ms between passes, not 0.1 ms: at most 11 passes in 100 ms.
        assert 2 <= len(runner.attempts) <= 11
        assert loop.time() - start >= 0.1


class TestExponentialMode:
    async def test_ceilings_follow_the_passes(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """After pass k the ceiling is min(cap, base * 2**(k-1)); the tracker counts passes."""
        rng = EndRng("lower")  # waits 0: the test takes no time
        use_rng(rng)
        runner = FakeRunner("r", *[busy()] * 7)  # refuses 7 passes, takes the 8th
        await NaivePlacer(exponential()).place_call(FakeRunnerPool([runner]), FakeCall())
        assert len(runner.attempts) == 8
        assert rng.ceilings == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2]

    async def test_far_fewer_passes_than_fixed(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """Base 10 ms, cap 200 ms, 1 s timeout: a handful of passes, not fixed mode's ~100.

        The expected waits are 5, 10, 20, 40, 80, then 100 ms: about 12 passes fit in 1 s.
        """
        use_rng(random.Random(20261127))
        runner = FakeRunner("busy", then=busy())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=1.0)).place_call(
                FakeRunnerPool([runner]), FakeCall()
            )
        assert 2 <= len(runner.attempts) <= 20

    async def test_cap_bounds_each_wait(self, use_rng: Callable[[random.Random], None]) -> None:
        """With every wait at its ceiling and a 50 ms cap, 12 passes fit in 500 ms.

        Waits 10, 20, 40, then 50 ms eight times end at 470 ms; uncapped (10, 20, 40, 80,
        160, 320 ms) only 6 passes would.
        """
        use_rng(EndRng())
        runner = FakeRunner("busy", then=busy())
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=0.5, backoff_max_delay=0.05)).place_call(
                FakeRunnerPool([runner]), FakeCall()
            )
        assert 11 <= len(runner.attempts) <= 12
        assert 0.5 <= loop.time() - start < 0.6

    async def test_placer_timeout_is_the_hard_stop(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """A wait that would end after the placer timeout is cut at the timeout.

        Passes start at 0, 10, 30, 70 and 150 ms; the next wait (160 ms) would end at 310.
        """
        views = register_views()
        use_rng(EndRng())
        runner = FakeRunner("busy", then=busy())
        loop = asyncio.get_running_loop()
        start = loop.time()
        config = exponential(placer_timeout=0.3, backoff_max_delay=10)
        with pytest.raises(ServerBusyError):
            await NaivePlacer(config).place_call(FakeRunnerPool([runner]), FakeCall())
        assert 0.3 <= loop.time() - start < 0.4
        assert counts(views) == {"attempt": 5, "retry_busy": 5, "placer_timeout": 1}

    async def test_request_deadline_is_a_hard_stop(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """The request's deadline cuts a long wait too, and counts as the client's timeout."""
        views = register_views()
        use_rng(EndRng())
        runner = FakeRunner("busy", then=busy())
        loop = asyncio.get_running_loop()
        start = loop.time()
        config = exponential(backoff_max_delay=10)
        with pytest.raises(ServerBusyError):
            await NaivePlacer(config).place_call(
                FakeRunnerPool([runner]), FakeCall().expire_in(0.2)
            )
        assert 0.2 <= loop.time() - start < 0.3
        assert counts(views) == {"attempt": 5, "retry_busy": 5, "client_timeout": 1}


class TestMetricsUnchanged:
    """Exponential mode records exactly what the fixed mode records."""

    async def test_empty_list_counts_rp_empty_per_pass(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """Empty list, no error: one rp_empty per pass, then the placer timeout and 503."""
        views = register_views()
        use_rng(random.Random(1))
        pool = FakeRunnerPool([])
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=0.2)).place_call(pool, FakeCall())
        result = counts(views)
        assert result.pop("rp_empty") == pool.calls >= 2
        assert result == {"attempt": 0, "placer_timeout": 1}

    async def test_fail_fast_does_not_wait(self, use_rng: Callable[[random.Random], None]) -> None:
        """A user's 502 with no runners stops after one pass, drawing no wait."""
        views = register_views()
        use_rng(NoRng())
        pool = FakeRunnerPool(FunctionFailedError())
        with pytest.raises(FunctionFailedError):
            await NaivePlacer(exponential(placer_timeout=5)).place_call(pool, FakeCall())
        assert pool.calls == 1
        assert counts(views) == {"attempt": 0, "rp_empty": 1, "rp_error": 1}

    async def test_refusals_are_classified_as_before(
        self, use_rng: Callable[[random.Random], None]
    ) -> None:
        """Busy refusals count retry_busy, other refusals retry_error, one per attempt."""
        views = register_views()
        use_rng(random.Random(2))
        b, e = FakeRunner("busy", then=busy()), FakeRunner("err", then=refuse())
        with pytest.raises(ServerBusyError):
            await NaivePlacer(exponential(placer_timeout=0.2)).place_call(
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


CORE_PLACERS: dict[str, Callable[[PlacerConfig], BasePlacer]] = {
    "ch": CHPlacer,
    "ch-fn": lambda config: CHPlacer(config, variant="fn"),
    "naive": NaivePlacer,
}


class TestOneTryPerPass:
    @pytest.mark.parametrize("mode", ["fixed", "exponential"])
    @pytest.mark.parametrize("name", sorted(CORE_PLACERS))
    async def test_refusing_runners_are_not_retried_in_the_pass(
        self, name: str, mode: str, use_rng: Callable[[random.Random], None]
    ) -> None:
        """Within one pass, a runner that refused is never tried again; the next pass may."""
        use_rng(random.Random(3))
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
            await CORE_PLACERS[name](config).place_call(pool, FakeCall())
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
