"""Admission control: does a call fit on this runner now, later, or never.

The port of Fn's non-blocking resource tracker (``FN_ENABLE_NB_RESOURCE_TRACKER=1``): a call
that fits starts; one that does not fit now is refused at once, so the load balancer places
it elsewhere (runners never queue; queueing happens at the load balancer); one that could
never fit is an error. runnerpool adds an optional cap on concurrent calls.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capacity", "Reservation"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Resources held by one admitted call; give them back with :meth:`Capacity.release`.

    Attributes:
        memory_mb: Megabytes held.
    """

    memory_mb: int


class Capacity:
    """Memory (MB) and call slots of a runner.

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

    def try_reserve(self, memory_mb: int) -> Reservation | None:
        """Reserve room for one call if it fits now, or return ``None`` at once."""
        if self.max_calls is not None and self._calls >= self.max_calls:
            return None
        if self.memory_mb is not None and self._used_mb + memory_mb > self.memory_mb:
            return None
        self._used_mb += memory_mb
        self._calls += 1
        return Reservation(memory_mb)

    def release(self, reservation: Reservation) -> None:
        """Give back what a call held."""
        self._used_mb -= reservation.memory_mb
        self._calls -= 1
