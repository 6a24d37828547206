"""The limits of the load balancer's HTTP edge: what one client may cost it, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_MAX_REQUEST_SIZE",
    "EdgeLimits",
]

#: Largest request body by default: 6 MiB, the limit of common FaaS platforms' synchronous
#: calls and the ``FN_MAX_REQUEST_SIZE`` of Fn's own system tests.
DEFAULT_MAX_REQUEST_SIZE = 6 * 1024 * 1024

#: Seconds a draining load balancer lets its calls in flight run before cancelling them:
#: twice Fn's default function timeout (30 s), so a default call started just before the
#: signal still ends on its own.
DEFAULT_DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """Per-connection limits of the load balancer's HTTP server; every one is on by default.

    Attributes:
        max_header_size: Largest request head (request line and headers), in bytes; larger
            ones get 431 and the connection is closed.
        header_timeout: Seconds a connection has to send a whole request head, from when it
            opens (on a keep-alive connection, from its next request's first bytes); then
            408 and the connection is closed (slow headers, "slowloris"). A connection that
            sent nothing is closed without an answer.
        body_timeout: Seconds a request has to send its whole body after its head; then 408
            and the connection is closed (slow bodies).
        keepalive_timeout: Seconds an idle keep-alive connection is kept between requests.
        max_connections: Connections kept open. A new one beyond it closes the connection
            idle longest; when every connection is busy, the new one's requests get 503
            (``GET /health`` is still answered), up to :attr:`connection_reserve` more, and
            connections beyond those are closed at once.
    """

    max_header_size: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 5.0
    max_connections: int = 10_000

    def __post_init__(self) -> None:
        if self.max_header_size < 1024:
            raise ValueError(f"max_header_size must be at least 1024, not {self.max_header_size}")
        for name in ("header_timeout", "body_timeout", "keepalive_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections}")

    @property
    def connection_reserve(self) -> int:
        """Connections accepted past :attr:`max_connections` to answer 503 (and ``/health``)."""
        return reserve_for(self.max_connections)


def reserve_for(max_connections: int) -> int:
    """Return the 503-answering reserve for a connection cap: 1 % of it, at least 16."""
    return max(16, max_connections // 100)
