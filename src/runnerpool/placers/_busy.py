"""Runners that refused a placer recently, and the calls waiting for one of them to free up.

The state behind the ``"release"`` back-off mode (see :class:`~runnerpool.PlacerConfig`). Under
overload, Fn's waiting calls poll every runner after every pass: each call is refused hundreds
of times. Here a placer remembers which runners refused it (and the smallest memory refused),
passes over them until one of its own calls on that runner ends (a *release*: capacity came
back) or a hold time passes (capacity may have come back through another load balancer), and a
waiting call is woken by a release instead of polling.

A release wakes one waiting call, not all of them: waking all would send every waiting call to
the released runner, where one fits and the others are refused again. The call woken is the
oldest one that surely fits in the memory released, or else the oldest one.

The clock is the tracker's: every method that needs the time takes it as ``now``.
"""

from __future__ import annotations

import asyncio
import itertools

__all__ = ["BusyRunners"]


class BusyRunners:
    """One placer's memory of refusing runners, and its queue of waiting calls.

    Args:
        hold: Seconds a refusing runner is passed over when no release comes.
    """

    __slots__ = ("_ids", "_marks", "_waiters", "hold")

    def __init__(self, hold: float) -> None:
        self.hold = hold
        # address -> (held until, smallest memory refused since the last release)
        self._marks: dict[str, tuple[float, int]] = {}
        # Waiting calls in arrival order (a dict deletes in O(1) and iterates in order).
        self._waiters: dict[int, tuple[int, asyncio.Future[None]]] = {}
        self._ids = itertools.count()

    def refused(self, address: str, memory: int, now: float) -> None:
        """Record that the runner refused a call of ``memory`` MB as busy."""
        mark = self._marks.get(address)
        if mark is not None and mark[0] > now:
            memory = min(memory, mark[1])
        self._marks[address] = (now + self.hold, memory)

    def held(self, address: str, memory: int, now: float) -> bool:
        """Return whether a call of ``memory`` MB should pass over the runner now.

        It should when the runner refused a call of at most that memory, less than ``hold``
        seconds ago, and none of this placer's calls on it has ended since.
        """
        mark = self._marks.get(address)
        if mark is None:
            return False
        if mark[0] <= now:
            del self._marks[address]
            return False
        return memory >= mark[1]

    def released(self, address: str, memory: int, now: float | None = None) -> None:
        """Record that a call of ``memory`` MB on the runner ended; wake one waiting call.

        ``now`` is for :class:`~runnerpool.placers._fifo.FifoQueue`'s clock; this class needs none.
        """
        self._marks.pop(address, None)
        chosen = oldest = None
        for key, (wanted, future) in self._waiters.items():
            # A call whose wait just timed out or was cancelled is still listed until its
            # task runs again: it is not there to wake (waking it raised InvalidStateError
            # in the releasing call, a 500 for a call that had run: bench/replay.py).
            if future.done():
                continue
            if oldest is None:
                oldest = key
            if wanted <= memory:
                chosen = key
                break
        if chosen is None:
            chosen = oldest
        if chosen is None:
            return
        _, future = self._waiters.pop(chosen)
        future.set_result(None)

    @property
    def waiting(self) -> int:
        """How many calls are waiting for a release."""
        return len(self._waiters)

    async def wait(self, memory: int, within: float) -> bool:
        """Wait until a release wakes this call, or ``within`` seconds pass.

        Args:
            memory: The waiting call's memory, MB.
            within: The longest wait, seconds.

        Returns:
            ``True`` if a release woke the call, ``False`` if the time ran out.
        """
        key = next(self._ids)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[key] = (memory, future)
        try:
            async with asyncio.timeout(within):
                await future
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(key, None)
        return True
