"""Properties of the placers beyond Fn: movement, balance, probe orders and load counts."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runnerpool import (
    BoundedLoadPlacer,
    Call,
    LeastLoadedPlacer,
    PlacerConfig,
    RendezvousPlacer,
    Runner,
    RunnerStatus,
    WarmBoundedPlacer,
)
from runnerpool.placers import PlacerRuntime, create_placer
from runnerpool.placers._rendezvous import RendezvousBase
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, hang

FAST = PlacerConfig(placer_timeout=0.1, retry_all_delay=0.005)
NEW: dict[str, Callable[[], RendezvousBase]] = {
    "bounded": lambda: BoundedLoadPlacer(FAST),
    "rendezvous": lambda: RendezvousPlacer(FAST),
    "least-loaded": lambda: LeastLoadedPlacer(FAST),
    "warm-bounded": lambda: WarmBoundedPlacer(FAST),
}

addresses = st.lists(
    st.from_regex(r"10\.0\.[0-9]{1,2}\.[0-9]{1,3}:9190", fullmatch=True),
    min_size=2,
    max_size=24,
    unique=True,
)
fn_ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True)


def _runners(names: Sequence[str]) -> tuple[Runner, ...]:
    return tuple(FakeRunner(name) for name in names)


def _homes(placer: RendezvousPlacer, fns: Sequence[str], names: Sequence[str]) -> list[str]:
    runners = _runners(names)
    return [names[placer.home(fn, runners)] for fn in fns]


class TestMovement:
    @settings(deadline=None, max_examples=60)
    @given(names=addresses, fns=fn_ids, data=st.data())
    def test_removing_a_runner_moves_only_its_functions(
        self, names: list[str], fns: list[str], data: st.DataObject
    ) -> None:
        """Removing any runner changes the home of exactly the functions whose home it was."""
        gone = data.draw(st.integers(0, len(names) - 1))
        placer = RendezvousPlacer()
        before = _homes(placer, fns, names)
        after = _homes(placer, fns, names[:gone] + names[gone + 1 :])
        for old, new in zip(before, after, strict=True):
            assert (old != new) == (old == names[gone])

    @settings(deadline=None, max_examples=60)
    @given(names=addresses, fns=fn_ids, data=st.data())
    def test_adding_a_runner_moves_only_functions_it_becomes_home_of(
        self, names: list[str], fns: list[str], data: st.DataObject
    ) -> None:
        """Adding a runner anywhere moves only the functions whose new home it is."""
        new_name, *old_names = names
        where = data.draw(st.integers(0, len(old_names)))
        placer = RendezvousPlacer()
        before = _homes(placer, fns, old_names)
        after = _homes(placer, fns, [*old_names[:where], new_name, *old_names[where:]])
        for old, new in zip(before, after, strict=True):
            assert (old != new) == (new == new_name)

    @pytest.mark.parametrize("runner_count", [5, 20, 100])
    def test_moved_share_is_about_one_over_n(self, runner_count: int) -> None:
        """Removing one runner of n (from the middle) moves at most 1/n + 1% of homes."""
        names = [f"10.0.0.{i}:9190" for i in range(runner_count)]
        fns = [f"01ARZ3NDEKTSV4RR{i:010d}" for i in range(20_000)]
        placer = RendezvousPlacer()
        before = _homes(placer, fns, names)
        for gone in (0, runner_count // 2, runner_count - 1):
            after = _homes(placer, fns, names[:gone] + names[gone + 1 :])
            moved = sum(old != new for old, new in zip(before, after, strict=True)) / len(fns)
            assert moved <= 1 / runner_count + 0.01


class TestProbeOrder:
    @settings(deadline=None, max_examples=40)
    @given(
        name=st.sampled_from(sorted(NEW)),
        runner_count=st.integers(1, 30),
        fns=fn_ids,
        busy_loads=st.lists(st.integers(0, 5), max_size=30),
    )
    def test_every_pass_is_a_permutation(
        self, name: str, runner_count: int, fns: list[str], busy_loads: list[int]
    ) -> None:
        """Whatever the loads, each order tries every runner once; counts return to zero."""
        placer = NEW[name]()
        runners = _runners([f"r{i}" for i in range(runner_count)])
        load = getattr(placer, "load", None)
        if load is not None:  # pretend other calls are in flight
            for index, extra in enumerate(busy_loads[:runner_count]):
                if extra:
                    load.counts[f"r{index}"] = extra
                    load.total += extra
        for fn in fns:
            order = [
                i % runner_count for i in placer.runner_order(FakeCall(Call(fn_id=fn)), runners)
            ]
            assert sorted(order) == list(range(runner_count))
        if load is not None:
            expected = {f"r{i}": n for i, n in enumerate(busy_loads[:runner_count]) if n}
            assert load.counts == expected
            assert load.total == sum(expected.values())

    def test_overflow_does_not_pile_onto_one_neighbour(self) -> None:
        """The functions of one home fall back to many different second runners."""
        placer = RendezvousPlacer()
        runners = _runners([f"10.0.0.{i}:9190" for i in range(10)])
        seconds: set[int] = set()
        for i in range(2000):
            order = list(placer.runner_order(FakeCall(Call(fn_id=f"fn{i}")), runners))
            if order[0] == 0:
                seconds.add(order[1])
        assert seconds == set(range(1, 10))


async def _settle(runners: Sequence[FakeRunner], in_flight: int) -> None:
    """Let the placing tasks run until the runners hold ``in_flight`` calls."""
    for _ in range(100):
        if sum(r.in_flight for r in runners) >= in_flight:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"runners never held {in_flight} calls")


async def _hold(placer: RendezvousBase, runners: Sequence[FakeRunner], fns: Sequence[str]) -> None:
    """Place one held call per function id, one after another, checking the load bound."""
    pool = FakeRunnerPool(list(runners))
    tasks: list[asyncio.Task[None]] = []
    try:
        for placed, fn in enumerate(fns, start=1):
            tasks.append(asyncio.create_task(placer.place_call(pool, FakeCall(Call(fn_id=fn)))))
            await _settle(runners, placed)
            loads = [r.in_flight for r in runners]
            if isinstance(placer, BoundedLoadPlacer):
                assert max(loads) <= math.ceil(placer.factor * placed / len(runners))
            load = getattr(placer, "load")  # noqa: B009 - every load-aware placer has one
            assert load.counts == {r.address: r.in_flight for r in runners if r.in_flight}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    load = getattr(placer, "load")  # noqa: B009
    assert (load.counts, load.total) == ({}, 0)


class TestBoundedLoad:
    @settings(deadline=None, max_examples=30)
    @given(
        runner_count=st.integers(1, 12),
        factor=st.floats(1.0, 2.0),
        fns=st.lists(st.sampled_from(["hot", "warm", "a", "b"]), min_size=1, max_size=60),
    )
    def test_no_runner_above_c_times_average(
        self, runner_count: int, factor: float, fns: list[str]
    ) -> None:
        """While runners accept and hold calls, none holds more than ceil(c * average)."""
        runners = [FakeRunner(f"10.0.0.{i}:9190", then=hang()) for i in range(runner_count)]
        config = dataclasses.replace(FAST, bounded_load_factor=factor)
        asyncio.run(_hold(BoundedLoadPlacer(config), runners, fns))

    async def test_one_hot_function_max_over_mean(self) -> None:
        """400 held calls of one function on 10 runners: max/mean in flight is at most 1.25."""
        runners = [FakeRunner(f"10.0.0.{i}:9190", then=hang()) for i in range(10)]
        placer = BoundedLoadPlacer(FAST)
        pool = FakeRunnerPool(runners)
        tasks = [
            asyncio.create_task(placer.place_call(pool, FakeCall(Call(fn_id="hot"))))
            for _ in range(400)
        ]
        await _settle(runners, 400)
        loads = [r.in_flight for r in runners]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert max(loads) / (sum(loads) / len(loads)) <= 1.25
        assert (placer.load.counts, placer.load.total) == ({}, 0)

    async def test_runners_at_the_bound_are_still_tried(self) -> None:
        """When only the runners at the bound can take the call, a pass still reaches them."""
        placer = BoundedLoadPlacer(FAST)
        runners = [FakeRunner("a"), FakeRunner("b", then=busy())]
        placer.load.counts["a"] = 5
        placer.load.total = 5
        await placer.place_call(FakeRunnerPool(runners), FakeCall(Call(fn_id="f")))
        assert [len(r.attempts) for r in runners] == [1, 1]
        assert placer.load.counts == {"a": 5}

    def test_factor_below_one_is_an_error(self) -> None:
        """A factor below 1 cannot hold: every runner would be over the bound."""
        with pytest.raises(ValueError, match=">= 1"):
            BoundedLoadPlacer(PlacerConfig(bounded_load_factor=0.9))


class TestLeastLoaded:
    async def test_hot_function_spreads_over_its_two_preferred_runners(self) -> None:
        """Held calls of one function alternate between its two preferred runners."""
        runners = [FakeRunner(f"10.0.0.{i}:9190", then=hang()) for i in range(8)]
        placer = LeastLoadedPlacer(FAST)
        await _hold(placer, runners, ["hot"] * 10)
        preferred = placer.preferred("hot", placer.membership(runners))[:2]
        assert sorted(len(runners[i].attempts) for i in preferred) == [5, 5]
        assert sum(len(r.attempts) for r in runners) == 10


class TestMembership:
    def test_a_list_changed_in_place_is_noticed(self) -> None:
        """Only tuples are recognised by identity; a list is compared by its addresses."""
        placer = RendezvousPlacer()
        runners: list[Runner] = [FakeRunner(f"r{i}") for i in range(5)]
        home = placer.home("f", runners)
        del runners[home]
        assert placer.membership(runners).addresses == tuple(r.address for r in runners)
        assert placer.home("f", runners) < 4


class TestFactorFromConfig:
    def test_factor_comes_from_the_config_only(self) -> None:
        """The bounded placer's c is the config's bounded_load_factor, its one setting."""
        assert BoundedLoadPlacer().factor == PlacerConfig().bounded_load_factor == 1.25
        config = PlacerConfig(bounded_load_factor=2.0)
        assert BoundedLoadPlacer(config).factor == 2.0
        assert create_placer("bounded", config).factor == 2.0  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            BoundedLoadPlacer(config, factor=1.5)  # type: ignore[call-arg]

    async def test_a_larger_factor_keeps_more_calls_at_home(self) -> None:
        """With c = 1 a hot function's 40 held calls spread evenly; with c = 4 they stay home.

        c = 4 over 4 runners bounds a runner at ceil(4 * (k + 1) / 4) = k + 1 calls, which
        the home never reaches: every call stays on it.
        """
        for factor, expected in ((1.0, [10, 10, 10, 10]), (4.0, [0, 0, 0, 40])):
            runners = [FakeRunner(f"10.0.0.{i}:9190", then=hang()) for i in range(4)]
            placer = BoundedLoadPlacer(dataclasses.replace(FAST, bounded_load_factor=factor))
            await _hold(placer, runners, ["hot"] * 40)
            assert sorted(len(r.attempts) for r in runners) == expected


class StatusRunner(FakeRunner):
    """A fake runner whose status reports a fixed count of calls from other load balancers."""

    def __init__(self, address: str, active: int | Exception) -> None:
        super().__init__(address)
        self.active = active

    async def status(self) -> RunnerStatus:
        if isinstance(self.active, Exception):
            raise self.active
        return RunnerStatus(active_request_count=self.active)


class TestLeastLoadedStatus:
    def _order(self, placer: LeastLoadedPlacer, runners: Sequence[Runner]) -> list[int]:
        order = placer.runner_order(FakeCall(Call(fn_id="f")), runners)
        first = list(itertools.islice(order, 2))
        getattr(order, "close")()  # noqa: B009 - release the load count, as the loop does
        return first

    async def test_fresh_status_reorders_the_preferred_runners(self) -> None:
        """A busy home (by its status) goes second; once the status is stale, first again."""
        runners = [StatusRunner(f"10.0.0.{i}:9190", 0) for i in range(6)]
        now = [100.0]
        runtime = PlacerRuntime(clock=lambda: now[0])
        placer = LeastLoadedPlacer(FAST, status_max_age=5.0, runtime=runtime)
        home, second = placer.preferred("f", placer.membership(runners))[:2]
        assert self._order(placer, runners) == [home, second]
        runners[home].active = 7
        runners[second].active = RuntimeError("status failed")  # no fresh status: own count 0
        await placer.refresh_status(runners)
        assert placer.runner_load(runners[home].address) == 7
        assert placer.runner_load(runners[second].address) == 0
        assert self._order(placer, runners) == [second, home]
        now[0] = 105.1
        assert self._order(placer, runners) == [home, second]
        assert placer.runner_load(runners[home].address) == 0

    def test_failed_status_is_ignored_and_own_count_wins_when_larger(self) -> None:
        """A failed status check is not a load; the LB's own count is a floor."""
        placer = LeastLoadedPlacer(FAST)
        placer.observe_status("a", RunnerStatus(active_request_count=9, status_failed=True))
        assert placer.runner_load("a") == 0
        placer.observe_status("a", RunnerStatus(active_request_count=2))
        placer.load.counts["a"] = 3
        assert placer.runner_load("a") == 3

    def test_negative_max_age_is_refused(self) -> None:
        """status_max_age below 0 is a bug."""
        with pytest.raises(ValueError, match="status_max_age"):
            LeastLoadedPlacer(status_max_age=-1)
