"""Fair waiting under overload: the ``"fifo"`` back-off mode's queue of waiting calls.

In the ``"release"`` mode a call that waited and was refused again rejoins the waiting calls
at the back, and a new call tries the runners before those already waiting, so under
overload the unlucky calls wait longest. Here a call takes a ticket after its first pass in
which every runner refused and keeps it until it is placed or gives up: whenever it waits, it
waits in its ticket's place. While any call waits, a new call tries no runner and takes the
next ticket. A release wakes, in ticket order, the waiting calls that fit together in the
memory released (or the first, if none fits): waking one call per release left the rest of
a large release to whoever polled first, and the p99 wait 0.62x Fn's instead of 0.49x
(docs/decisions.md). The runners that refused are passed over as in the ``"release"`` mode
(:class:`~runnerpool.placers._busy.BusyRunners`, which this class extends).

The queue is bounded, and it sheds early: a call whose expected wait exceeds the time it has
left is refused at once, not at its deadline. The expected wait is the number of calls
waiting ahead of it, plus one, over the queue's recent drain rate: the calls woken by
releases per second of time in which someone waited (time with no one waiting says nothing
about how fast the queue drains). A woken call leaves the queue while it tries the runners:
a placed call's attempt lasts as long as the call runs, so only a call's next wait can say
it was refused again.

The clock is the tracker's: every method that needs the time takes it as ``now``, or, to
read it after a wait, as ``clock``.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import deque
from collections.abc import Callable

from ._busy import BusyRunners

__all__ = ["FifoQueue"]

#: Wake-ups the drain rate is measured over.
DRAIN_WINDOW = 64
#: Waiting calls a release looks at, from the first: a bound on the work of a release.
SCAN = 64
#: Wake-ups needed before any call is shed: a rate from fewer is noise.
MIN_WAKES = 8


class FifoQueue(BusyRunners):
    """One placer's refusing runners, and its bounded first-come, first-served queue.

    Args:
        hold: Seconds a refusing runner is passed over when no release comes; also the
            longest a waiting call waits for a wake-up before it tries the runners again
            (capacity freed by another load balancer's calls wakes no one here).
        limit: The most calls waiting; a call finding the queue full is refused at once.
    """

    __slots__ = ("_busy_since", "_busy_total", "_order", "_queue", "_tickets", "_wakes", "limit")

    def __init__(self, hold: float, limit: int) -> None:
        super().__init__(hold)
        self.limit = limit
        # ticket -> (memory, future) of the calls waiting now, and their tickets in order:
        # a call that waits again goes back to its ticket's place, not to the back.
        self._queue: dict[int, tuple[int, asyncio.Future[None]]] = {}
        self._order: list[int] = []
        self._tickets = itertools.count()
        # Wake-ups stamped on the queue's busy clock (seconds with someone waiting).
        self._wakes: deque[float] = deque(maxlen=DRAIN_WINDOW + 1)
        self._busy_total = 0.0
        self._busy_since = 0.0

    @property
    def waiting(self) -> int:
        """How many calls are waiting now."""
        return len(self._queue)

    def _busy_clock(self, now: float) -> float:
        return self._busy_total + (now - self._busy_since if self._queue else 0.0)

    def drain_rate(self, now: float) -> float | None:
        """Return the calls woken per second of someone waiting, over the recent wake-ups.

        Returns:
            The rate, or ``None`` while fewer than :data:`MIN_WAKES` calls were woken.
        """
        wakes = self._wakes
        if len(wakes) < MIN_WAKES:
            return None
        # The wake-ups after the first, over the busy time since it: while calls wait and no
        # one is woken, the rate falls.
        elapsed = self._busy_clock(now) - wakes[0]
        return (len(wakes) - 1) / elapsed if elapsed > 0 else None

    def expected_wait(self, ahead: int, now: float) -> float:
        """Return the expected wait of a call with ``ahead`` calls waiting before it (0 unknown)."""
        rate = self.drain_rate(now)
        return 0.0 if rate is None else (ahead + 1) / rate

    def join(self, now: float, remaining: float) -> int | None:
        """Give a call its ticket: its place, at the back of the queue.

        Args:
            now: The time.
            remaining: Seconds until the call's deadline (or its placer's timeout).

        Returns:
            The ticket, or ``None`` if the queue is full or the call's expected wait
            exceeds ``remaining``: the call is refused now.
        """
        ahead = len(self._queue)
        if ahead >= self.limit or self.expected_wait(ahead, now) > remaining:
            return None
        return next(self._tickets)

    def hopeless(self, ticket: int, now: float, remaining: float) -> bool:
        """Return whether the call's expected wait from its place exceeds ``remaining``."""
        return self.expected_wait(bisect.bisect_left(self._order, ticket), now) > remaining

    def _remove(self, ticket: int, now: float) -> None:
        del self._queue[ticket]
        del self._order[bisect.bisect_left(self._order, ticket)]
        if not self._queue:
            self._busy_total += now - self._busy_since

    def released(self, address: str, memory: int, now: float | None = None) -> None:
        """Record that a call of ``memory`` MB on the runner ended; wake waiting calls.

        The calls woken are those, in ticket order, that fit together in the memory
        released; if none fits, the first is woken.
        """
        self._marks.pop(address, None)
        queue = self._queue
        if not queue or now is None:
            return
        # A call whose wait just timed out or was cancelled is still listed until its task
        # runs again: it is not there to wake.
        order = [ticket for ticket in self._order[:SCAN] if not queue[ticket][1].done()]
        woken: list[int] = []
        left = memory
        for ticket in order:
            wanted = queue[ticket][0]
            if wanted <= left:
                woken.append(ticket)
                left -= wanted
        for ticket in woken or order[:1]:
            future = queue[ticket][1]
            self._wakes.append(self._busy_clock(now))
            self._remove(ticket, now)
            future.set_result(None)

    async def wait_turn(
        self, ticket: int, memory: int, clock: Callable[[], float], within: float
    ) -> bool:
        """Wait in the ticket's place until a release wakes the call or ``within`` s pass.

        Args:
            ticket: The call's ticket, from :meth:`join`.
            memory: The call's memory, MB.
            clock: The tracker's clock.
            within: The longest wait, seconds.

        Returns:
            ``True`` if a release woke the call, ``False`` if the time ran out.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._queue:
            self._busy_since = clock()
        self._queue[ticket] = (memory, future)
        bisect.insort(self._order, ticket)
        try:
            async with asyncio.timeout(within):
                await future
        except TimeoutError:
            return False
        finally:
            if ticket in self._queue:
                self._remove(ticket, clock())
        return True
