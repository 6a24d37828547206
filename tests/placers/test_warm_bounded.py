"""The warm-bounded placer: bounded load that follows its functions' idle instances."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from runnerpool import (
    Call,
    PlacerConfig,
    PlacerRuntime,
    RendezvousPlacer,
    WarmBoundedPlacer,
    create_placer,
)
from runnerpool.sim import VirtualEventLoop
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, hang, succeed

FAST = PlacerConfig(placer_timeout=0.1, retry_all_delay=0.005)
ADDRESSES = [f"10.0.0.{i}:9190" for i in range(6)]


def _order(placer: WarmBoundedPlacer, fn: str, runners: Sequence[FakeRunner]) -> list[int]:
    """The whole order of one pass, as a list (every index is resumed: nothing is taken)."""
    return list(placer.runner_order(FakeCall(Call(fn_id=fn)), runners))


async def _place(placer: WarmBoundedPlacer, runners: Sequence[FakeRunner], fn: str) -> None:
    await placer.place_call(FakeRunnerPool(list(runners)), FakeCall(Call(fn_id=fn)))


async def _end_on(placer: WarmBoundedPlacer, fn: str, index: int) -> None:
    """Run one call of ``fn`` to its end on runner ``index``: the others refuse it."""
    runners = [
        FakeRunner(a, then=succeed() if i == index else busy()) for i, a in enumerate(ADDRESSES)
    ]
    await _place(placer, runners, fn)
    assert runners[index].attempts[-1].outcome == "succeed"


def _tried(runners: Sequence[FakeRunner]) -> list[str]:
    """The addresses tried, in the order tried, over all runners."""
    attempts = sorted((a.sequence, r.address) for r in runners for a in r.attempts)
    return [address for _, address in attempts]


class TestIdleInstances:
    async def test_a_call_goes_where_its_function_just_ended(self) -> None:
        """Home refuses, the call ends on the next runner: the function's next call goes there."""
        placer = WarmBoundedPlacer(FAST)
        runners = [FakeRunner(a) for a in ADDRESSES]
        home, second = _order(placer, "f", runners)[:2]
        runners[home] = FakeRunner(ADDRESSES[home], busy(), then=succeed())
        await _place(placer, runners, "f")
        assert _tried(runners) == [ADDRESSES[home], ADDRESSES[second]]
        await _place(placer, runners, "f")
        assert _tried(runners)[2:] == [ADDRESSES[second]]
        # Another function is not affected: its home comes first.
        assert _order(placer, "g", runners)[0] == RendezvousPlacer().home("g", runners)

    async def test_an_idle_instance_serves_one_call(self) -> None:
        """Two calls at once: the first takes the idle instance, the second goes home."""
        placer = WarmBoundedPlacer(FAST)
        runners = [FakeRunner(a, then=hang()) for a in ADDRESSES]
        home, second = _order(placer, "f", runners)[:2]
        await _end_on(placer, "f", second)  # its home was busy then
        pool = FakeRunnerPool(list(runners))
        tasks = [
            asyncio.create_task(placer.place_call(pool, FakeCall(Call(fn_id="f"))))
            for _ in range(2)
        ]
        for _ in range(20):
            await asyncio.sleep(0)
        try:
            assert [len(runners[i].attempts) for i in (second, home)] == [1, 1]
            assert sum(len(r.attempts) for r in runners) == 2
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert (placer.load.counts, placer.load.total) == ({}, 0)

    async def test_a_refusal_keeps_the_instance(self) -> None:
        """A runner that refuses the call keeps its idle instance: later calls still try it."""
        placer = WarmBoundedPlacer(FAST)
        runners = [FakeRunner(a) for a in ADDRESSES]
        home, second = _order(placer, "f", runners)[:2]
        await _end_on(placer, "f", second)
        runners[second] = FakeRunner(ADDRESSES[second], busy(), then=succeed())
        await _place(placer, runners, "f")
        assert _tried(runners) == [ADDRESSES[second], ADDRESSES[home]]
        # Both runners now hold an idle instance of f: home the latest, then `second`.
        assert _order(placer, "f", runners)[:2] == [home, second]

    def test_an_instance_older_than_the_window_is_forgotten(self) -> None:
        """On the virtual clock: within warm_window the runner comes first; after it, home."""
        loop = VirtualEventLoop()

        async def scenario() -> tuple[list[int], list[int], int]:
            runtime = PlacerRuntime(clock=loop.time)
            placer = WarmBoundedPlacer(FAST, warm_window=30.0, runtime=runtime)
            runners = [FakeRunner(a) for a in ADDRESSES]
            second = _order(placer, "f", runners)[1]
            await _end_on(placer, "f", second)
            await asyncio.sleep(29.0)
            within = _order(placer, "f", runners)
            await asyncio.sleep(2.0)
            return within, _order(placer, "f", runners), second

        try:
            within, after, second = loop.run_until_complete(scenario())
        finally:
            loop.close()
        assert within[0] == second
        assert after == _order(WarmBoundedPlacer(FAST), "f", [FakeRunner(a) for a in ADDRESSES])
        assert within != after


class TestLoadBound:
    async def test_held_calls_stay_within_the_bound(self) -> None:
        """40 held calls of a few functions on 6 runners: none above ceil(c * placed / n)."""
        placer = WarmBoundedPlacer(FAST)
        runners = [FakeRunner(a, then=hang()) for a in ADDRESSES]
        pool = FakeRunnerPool(list(runners))
        tasks: list[asyncio.Task[None]] = []
        try:
            for placed, fn in enumerate(["hot", "hot", "hot", "a", "b"] * 8, start=1):
                call = FakeCall(Call(fn_id=fn))
                tasks.append(asyncio.create_task(placer.place_call(pool, call)))
                for _ in range(20):
                    await asyncio.sleep(0)
                loads = [r.in_flight for r in runners]
                assert sum(loads) == placed
                assert max(loads) <= math.ceil(placer.factor * placed / len(runners))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert (placer.load.counts, placer.load.total) == ({}, 0)

    async def test_an_idle_instance_on_a_full_runner_waits_its_turn(self) -> None:
        """A runner with an idle instance but at the load bound is tried after the others."""
        placer = WarmBoundedPlacer(FAST)
        runners = [FakeRunner(a) for a in ADDRESSES[:2]]
        home = _order(placer, "f", runners)[0]
        other = 1 - home
        await _end_on(placer, "f", other)
        placer.load.counts[ADDRESSES[other]] = 5
        placer.load.total = 5
        assert _order(placer, "f", runners) == [home, other]


class TestConstruction:
    def test_bad_arguments_are_errors(self) -> None:
        """A factor below 1 or a negative window cannot work."""
        with pytest.raises(ValueError, match="at least 1"):
            WarmBoundedPlacer(factor=0.9)
        with pytest.raises(ValueError, match="warm window"):
            WarmBoundedPlacer(warm_window=-1.0)

    def test_homes_are_rendezvous_homes(self) -> None:
        """A fresh placer's first runner is the rendezvous home: movement is rendezvous's."""
        runners = [FakeRunner(a) for a in ADDRESSES]
        placer, reference = create_placer("warm-bounded"), RendezvousPlacer()
        for i in range(200):
            order = _order(placer, f"fn{i}", runners)  # type: ignore[arg-type]
            assert order[0] == reference.home(f"fn{i}", runners)

    async def test_same_calls_same_orders(self) -> None:
        """Deterministic: two placers given the same calls try the same runners in order."""
        outcomes = []
        for _ in range(2):
            placer = WarmBoundedPlacer(FAST)
            runners = [FakeRunner(a, busy(), then=succeed()) for a in ADDRESSES]
            for i in range(30):
                await _place(placer, runners, f"fn{i % 4}")
            outcomes.append(_tried(runners))
        assert outcomes[0] == outcomes[1]
