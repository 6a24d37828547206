"""The ``"fifo"`` back-off mode on the virtual clock: order, runners leaving, shedding."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from runnerpool import PlacerConfig
from runnerpool._model import Call
from runnerpool.placers import create_placer
from runnerpool.sim import SimRunner, SimulationSettings, run_virtual, simulate, virtual_runtime
from runnerpool.sim._runner import SimCall, SimPool
from runnerpool.sim._simulate import _place

# No waiting call polls during these scenarios: only releases wake them.
QUIET = PlacerConfig(backoff="fifo", release_hold=1000.0, placer_timeout=500.0)


def _call(number: int, duration: float, memory: int = 1024, fn_id: str = "f") -> SimCall:
    return SimCall(
        Call(id=f"call-{number}", fn_id=fn_id, memory=memory),
        duration=duration,
        arrival=asyncio.get_running_loop().time(),
    )


def _runner(address: str) -> SimRunner:
    # Room for one call of 1024 MB at a time.
    return SimRunner(address, 1024, cold_start=0.0)


def test_waiters_are_woken_in_arrival_order() -> None:
    """Calls that found the only runner full are placed one per release, in arrival order."""

    async def scenario() -> list[SimCall]:
        loop = asyncio.get_running_loop()
        placer = create_placer("naive", QUIET, runtime=virtual_runtime(asyncio.get_running_loop()))
        pool = SimPool([_runner("a")])
        calls, tasks = [], []
        # Each waiter wants a different function, so the order is not the instances' order.
        for number, (at, duration) in enumerate([(0, 10), (1, 3), (2, 1), (3, 2), (4, 5)]):
            await asyncio.sleep(at - loop.time())
            call = _call(number, duration, fn_id=f"f{number}")
            calls.append(call)
            tasks.append(loop.create_task(_place(placer, pool, call)))
        assert all(await asyncio.gather(*tasks))
        return calls

    calls, _ = run_virtual(scenario())
    assert [call.committed_at for call in calls] == [0, 10, 13, 14, 16]


def test_release_mode_does_not_keep_the_order() -> None:
    """The same arrivals in the ``"release"`` mode: a later call overtakes an earlier one."""

    async def scenario() -> list[SimCall]:
        loop = asyncio.get_running_loop()
        placer = create_placer(
            "naive",
            PlacerConfig(backoff="release", placer_timeout=500.0),
            runtime=virtual_runtime(asyncio.get_running_loop(), seed=1),
        )
        pool = SimPool([_runner("a")])
        calls, tasks = [], []
        for number, (at, duration) in enumerate([(0, 10), (1, 3), (2, 1), (3, 2), (4, 5)]):
            await asyncio.sleep(at - loop.time())
            call = _call(number, duration, fn_id=f"f{number}")
            calls.append(call)
            tasks.append(loop.create_task(_place(placer, pool, call)))
        assert all(await asyncio.gather(*tasks))
        return calls

    calls, _ = run_virtual(scenario())
    committed = [call.committed_at or 0.0 for call in calls]
    assert committed != sorted(committed)


def test_no_waiter_is_lost_when_a_runner_leaves() -> None:
    """A runner leaves while calls wait and another joins: every waiter is placed, none dropped."""

    async def scenario() -> tuple[list[SimCall], int]:
        loop = asyncio.get_running_loop()
        placer = create_placer(
            "naive",
            PlacerConfig(backoff="fifo", placer_timeout=500.0),
            runtime=virtual_runtime(asyncio.get_running_loop(), seed=1),
        )
        a, b = _runner("a"), _runner("b")
        pool = SimPool([a, b])
        calls, tasks = [], []
        for number, (at, duration) in enumerate([(0, 5), (0, 20), (1, 4), (2, 4), (3, 4)]):
            await asyncio.sleep(at - loop.time())
            call = _call(number, duration, fn_id=f"f{number}")
            calls.append(call)
            tasks.append(loop.create_task(_place(placer, pool, call)))
        await asyncio.sleep(4 - loop.time())
        pool.members.remove(a)  # its call goes on until 5, and wakes a waiter that finds b full
        await asyncio.sleep(7 - loop.time())
        pool.members.append(_runner("c"))  # no release announces it: the waiters must poll
        assert all(await asyncio.gather(*tasks))
        queue = placer._busy
        assert queue is not None
        return calls, queue.waiting

    (calls, waiting), _ = run_virtual(scenario())
    waiters = calls[2:]
    # The waiter woken at 5 by a's release found only b, full, and waited again: it and the
    # others find c by polling, long before b frees at 20. (Polls keep no order: only
    # releases wake in arrival order.)
    assert [call.runner for call in waiters] == ["c", "c", "c"]
    assert sorted(call.committed_at or 0.0 for call in waiters) == [7, 11, 15]
    assert waiting == 0


def _shedding_scenario(phase_two: Sequence[float | None]) -> list[SimCall]:
    async def scenario() -> list[SimCall]:
        loop = asyncio.get_running_loop()
        placer = create_placer("naive", QUIET, runtime=virtual_runtime(asyncio.get_running_loop()))
        pool = SimPool([_runner("a")])
        # Phase one: 11 calls of 1 s at once; 10 wait and are woken one a second, which
        # teaches the queue its drain rate.
        tasks = [loop.create_task(_place(placer, pool, _call(n, 1.0))) for n in range(11)]
        assert all(await asyncio.gather(*tasks))
        await asyncio.sleep(20 - loop.time())
        # Phase two, at 20: the first call takes the runner until 21; the others wait or,
        # if their deadline (seconds from now) cannot be met, are shed at once.
        calls = [_call(100, 1.0)]
        for number, deadline in enumerate(phase_two, start=101):
            call = _call(number, 1.0)
            if deadline is not None:
                call.deadline = loop.time() + deadline
            calls.append(call)
        await asyncio.gather(*(_place(placer, pool, call) for call in calls))
        return calls

    calls, _ = run_virtual(scenario())
    return calls


def test_only_calls_the_queue_cannot_serve_in_time_are_shed() -> None:
    """A call that could be placed only past its deadline gets its 503 at once; others wait."""
    first, a, b, c, d = _shedding_scenario([10.0, 1.5, 10.0, 10.0])
    assert first.committed_at == 20
    # b would get the runner at 22 (after the first call and a), past its deadline at 21.5.
    assert b.committed_at is None
    assert b.ended_at == 20
    assert [a.committed_at, c.committed_at, d.committed_at] == [21, 22, 23]


def test_a_deadline_the_queue_can_meet_is_not_shed() -> None:
    """With time enough for every waiter, no call is shed, tight deadline or not."""
    calls = _shedding_scenario([10.0, 3.5, 10.0])
    assert [call.committed_at for call in calls] == [20, 21, 22, 23]


def test_a_full_queue_refuses_at_once() -> None:
    """With ``queue_limit`` calls waiting, the next call gets its 503 without waiting."""

    async def scenario() -> list[SimCall]:
        placer = create_placer(
            "naive",
            PlacerConfig(backoff="fifo", queue_limit=2),
            runtime=virtual_runtime(asyncio.get_running_loop()),
        )
        pool = SimPool([_runner("a")])
        calls = [_call(n, 1.0) for n in range(4)]
        await asyncio.gather(*(_place(placer, pool, call) for call in calls))
        return calls

    calls, _ = run_virtual(scenario())
    assert [call.committed_at for call in calls] == [0, 1, 2, None]
    assert calls[3].ended_at == 0


@pytest.mark.parametrize("lbs", [1, 2])
def test_fifo_on_a_workload_places_or_sheds_every_call_by_its_deadline(lbs: int) -> None:
    """On an overloaded workload no call waits past its placer's timeout for its 503."""
    settings = SimulationSettings(
        seed=3,
        duration=20,
        runners=3,
        runner_memory=2048,
        functions=30,
        utilisation=1.3,
        backoff="fifo",
        placer_timeout=5.0,
        lbs=lbs,
    )
    (report,) = simulate(settings, ["bounded"])
    assert report.late_503s == 0
    assert report.placed + report.rejected == report.calls
    assert report.queue_p99 <= 5.0 + 1e-6
    assert report.lbs == lbs
