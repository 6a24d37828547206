"""Admission control: does a call fit on this runner now, later, or never.

The port of Fn's non-blocking resource tracker (``FN_ENABLE_NB_RESOURCE_TRACKER=1``): a call
that fits starts; one that does not fit now is refused at once, so the load balancer places
it elsewhere (runners never queue; queueing happens at the load balancer); one that could
never fit is an error. runnerpool adds an optional cap on concurrent calls.
"""

from __future__ import annotations

__all__ = ["Capacity", "Reservation"]


class Reservation:
    """Resources held against a :class:`Capacity`; :meth:`release` gives them back once.

    Attributes:
        memory_mb: Megabytes held.
        calls: Call slots held (0 for memory held by an idle hot process).
    """

    __slots__ = ("_capacity", "calls", "memory_mb")

    def __init__(self, capacity: Capacity, memory_mb: int, calls: int) -> None:
        self._capacity: Capacity | None = capacity
        self.memory_mb = memory_mb
        self.calls = calls

    def release(self) -> None:
        """Give the resources back (a second release does nothing)."""
        if self._capacity is not None:
            self._capacity._give_back(self.memory_mb, self.calls)
            self._capacity = None


class Capacity:
    """Memory (MB) and call slots of a runner.

    A call holds a call slot while it runs; memory is held by whatever uses it: the call
    itself (in-process functions) or the hot process that serves it, for the process's life.

    Args:
        memory_mb: Total memory calls may reserve; ``None`` for no memory limit.
        max_calls: At most this many calls at once; ``None`` for no cap.

    Raises:
        ValueError: If a limit is negative.
    """

    def __init__(self, memory_mb: int | None = None, max_calls: int | None = None) -> None:
        if memory_mb is not None and memory_mb < 0:
            raise ValueError(f"memory_mb must be >= 0, got {memory_mb}")
        if max_calls is not None and max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls}")
        self.memory_mb = memory_mb
        self.max_calls = max_calls
        self._used_mb = 0
        self._calls = 0

    @property
    def used_mb(self) -> int:
        """Megabytes reserved now."""
        return self._used_mb

    @property
    def calls(self) -> int:
        """Calls holding a reservation now."""
        return self._calls

    def can_ever_fit(self, memory_mb: int) -> bool:
        """Return whether a call of this size could fit on an idle runner."""
        return self.memory_mb is None or memory_mb <= self.memory_mb

    def fits(self, memory_mb: int, calls: int = 1) -> bool:
        """Return whether this much would fit now."""
        if calls and self.max_calls is not None and self._calls + calls > self.max_calls:
            return False
        return self.memory_mb is None or self._used_mb + memory_mb <= self.memory_mb

    def try_reserve(self, memory_mb: int, calls: int = 1) -> Reservation | None:
        """Reserve memory and call slots if they fit now, or return ``None`` at once."""
        if not self.fits(memory_mb, calls):
            return None
        self._used_mb += memory_mb
        self._calls += calls
        return Reservation(self, memory_mb, calls)

    def release(self, reservation: Reservation) -> None:
        """Give back what a reservation held (the same as ``reservation.release()``)."""
        reservation.release()

    def _give_back(self, memory_mb: int, calls: int) -> None:
        self._used_mb -= memory_mb
        self._calls -= calls
