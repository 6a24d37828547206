"""The ``"fifo"`` mode's queue on its own: tickets, wake-ups, drain rate, limits."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool.placers._fifo import MIN_WAKES, FifoQueue


def _clock() -> float:
    return asyncio.get_running_loop().time()


class TestFifoQueue:
    async def test_a_release_wakes_the_waiters_that_fit_together_in_ticket_order(self) -> None:
        """256 MB released wakes the first two 128 MB waiters, passing over a 1024 MB one."""
        queue = FifoQueue(hold=1.0, limit=10)
        tickets = [queue.join(0.0, 100.0) for _ in range(4)]
        assert tickets == [0, 1, 2, 3]
        sizes = [1024, 128, 128, 128]
        waits = [
            asyncio.create_task(queue.wait_turn(t, m, _clock, 10))
            for t, m in zip(tickets, sizes, strict=True)
            if t is not None
        ]
        await asyncio.sleep(0)
        assert queue.waiting == 4
        queue.released("a", 256, _clock())
        await asyncio.sleep(0)
        assert [task.done() for task in waits] == [False, True, True, False]
        queue.released("a", 64, _clock())  # no one fits: the first is woken
        await asyncio.sleep(0)
        assert [task.done() for task in waits] == [True, True, True, False]
        waits[3].cancel()
        with pytest.raises(asyncio.CancelledError):
            await waits[3]
        assert queue.waiting == 0

    async def test_a_call_waiting_again_keeps_its_place(self) -> None:
        """A woken call that waits again is woken before a call that joined after it."""
        queue = FifoQueue(hold=1.0, limit=10)
        first, second = queue.join(0.0, 100.0), queue.join(0.0, 100.0)
        assert first is not None
        assert second is not None
        later = asyncio.create_task(queue.wait_turn(second, 128, _clock, 10))
        await asyncio.sleep(0)
        # The first call was trying runners meanwhile; it waits again, in its own place.
        again = asyncio.create_task(queue.wait_turn(first, 128, _clock, 10))
        await asyncio.sleep(0)
        queue.released("a", 128, _clock())
        await asyncio.sleep(0)
        assert again.done()
        assert not later.done()
        queue.released("a", 128, _clock())
        assert await later is True

    async def test_join_refuses_when_full(self) -> None:
        """With ``limit`` calls waiting, no ticket is given."""
        queue = FifoQueue(hold=1.0, limit=1)
        ticket = queue.join(0.0, 100.0)
        assert ticket is not None
        task = asyncio.create_task(queue.wait_turn(ticket, 128, _clock, 10))
        await asyncio.sleep(0)
        assert queue.join(0.0, 100.0) is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    def test_drain_rate_counts_only_time_with_someone_waiting(self) -> None:
        """Wake-ups one a second while calls wait give 1/s, however long the queue was empty."""

        async def scenario() -> tuple[float | None, float | None, float, bool]:
            queue = FifoQueue(hold=1.0, limit=100)
            tickets = [queue.join(0.0, 1000.0) for _ in range(MIN_WAKES)]
            waits = [
                asyncio.create_task(queue.wait_turn(t, 128, _clock, 100))
                for t in tickets
                if t is not None
            ]
            await asyncio.sleep(0)
            unknown = queue.drain_rate(_clock())
            for _ in tickets:
                await asyncio.sleep(1)
                queue.released("a", 128, _clock())
            await asyncio.gather(*waits)
            await asyncio.sleep(100)  # nobody waits: the rate is not diluted
            rate = queue.drain_rate(_clock())
            # A call with 3 ahead at 1 wake-up a second expects 4 s.
            expected = queue.expected_wait(3, _clock())
            return unknown, rate, expected, queue.join(_clock(), 0.5) is None

        from runnerpool.sim import run_virtual

        (unknown, rate, expected, refused), _ = run_virtual(scenario())
        assert unknown is None
        assert rate == pytest.approx(1.0)
        assert expected == pytest.approx(4.0)
        assert refused is True  # the queue is empty, but even the first place expects 1 s
