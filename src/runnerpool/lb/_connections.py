"""The load balancer's open connections: which are idle, and which to close to make room.

A connection is *idle* while no request of it is being served: from when it opens, or its
last response ends, until its next request head is complete. Idle connections are kept in
least-recently-used order, so that a new connection past the cap closes the one idle
longest (as nginx reuses its keep-alive connections when it runs out): idle connections,
however many a client opens, never lock others out, and the file descriptors in use stay
bounded.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Protocol

__all__ = ["Admission", "ConnectionTable", "Evictable"]


class Evictable(Protocol):
    """A connection the table may close to make room."""

    def evict(self) -> None:
        """Close the connection now; the table has already forgotten it."""


class Admission(enum.Enum):
    """What a new connection may do."""

    #: Within the cap: served.
    SERVED = "served"
    #: Past the cap with every other connection busy: its requests get 503, /health aside.
    OVER_CAP = "over-cap"
    #: Past the cap and its reserve: to be closed at once.
    REFUSED = "refused"


class ConnectionTable:
    """Counts open connections, tracks the idle ones, and closes idle ones past the cap.

    Args:
        max_connections: Connections kept open.
        reserve: Connections accepted past ``max_connections`` when none is idle.
    """

    def __init__(self, max_connections: int, reserve: int) -> None:
        self.max_connections = max_connections
        self.reserve = reserve
        self.evicted = 0
        self._open: set[Evictable] = set()
        self._idle: OrderedDict[Evictable, None] = OrderedDict()

    @property
    def open(self) -> int:
        """Connections open (and not yet closed by the table)."""
        return len(self._open)

    @property
    def over_cap(self) -> bool:
        """Whether more than ``max_connections`` are open."""
        return len(self._open) > self.max_connections

    def admit(self, connection: Evictable) -> Admission:
        """Count a new connection, closing idle ones past the cap; say what it may do.

        A refused connection is not counted: the caller closes it.
        """
        while len(self._open) >= self.max_connections and self._idle:
            victim, _ = self._idle.popitem(last=False)
            self._open.discard(victim)
            self.evicted += 1
            victim.evict()
        if len(self._open) >= self.max_connections + self.reserve:
            return Admission.REFUSED
        self._open.add(connection)
        self._idle[connection] = None
        return Admission.SERVED if len(self._open) <= self.max_connections else Admission.OVER_CAP

    def busy(self, connection: Evictable) -> None:
        """Mark a connection as serving a request: it is not closed to make room."""
        self._idle.pop(connection, None)

    def idle(self, connection: Evictable, *, first: bool = False) -> None:
        """Mark a connection as idle, most recently used (or, with ``first``, next to close)."""
        if connection in self._open:
            self._idle[connection] = None
            self._idle.move_to_end(connection, last=not first)

    def release(self, connection: Evictable) -> None:
        """Forget a connection that closed."""
        self._open.discard(connection)
        self._idle.pop(connection, None)
