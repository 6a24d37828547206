"""File descriptors for the load balancer's connections: the limit, the budget, accept errors.

Every connection holds a descriptor. The load balancer raises its soft ``RLIMIT_NOFILE`` to
the hard limit at start, keeps its connection cap (and the cap's reserve) below that with
room for its own files and runner connections, so ``accept()`` does not run out; if it still
does (descriptors used elsewhere), asyncio's error for each failed ``accept()`` is logged at
a bounded rate instead of one traceback each.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from ._limits import reserve_for
from ._ratelog import RateLimitedLog

__all__ = [
    "ACCEPT_BACKLOG",
    "FD_HEADROOM",
    "connection_budget",
    "handle_accept_errors",
    "raise_open_files_limit",
]

logger = logging.getLogger(__name__)

#: Descriptors kept for everything but client connections: the listening socket, the event
#: loop, standard streams, log files, the runners' connections...
FD_HEADROOM = 256
#: ...and the connections asyncio accepts in one go (the listen backlog) before any of them
#: is counted.
ACCEPT_BACKLOG = 1024

#: asyncio's messages (Python 3.11 to 3.13) for a failed ``accept()`` of a listening socket.
_ACCEPT_ERRORS = frozenset(
    {
        "socket.accept() out of system resource",
        "Error on transport creation for incoming connection",
    }
)


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit on some systems
            logger.debug("Could not raise the open files limit to %s: %s", hard, exc)
            return soft
        return hard
    return soft


def connection_budget(
    requested: int, open_files: int, headroom: int = FD_HEADROOM + ACCEPT_BACKLOG
) -> int:
    """Return the connection cap that fits the open files limit (at least 1).

    At most ``requested``, and with its reserve and ``headroom``, within ``open_files``.

    Args:
        requested: The cap asked for.
        open_files: The soft limit of open files.
        headroom: Descriptors kept for everything else.
    """
    available = open_files - headroom
    if requested + reserve_for(requested) <= available:
        return requested
    # The reserve grows with the cap, so the available count's reserve is enough for less.
    return max(1, available - reserve_for(available))


def handle_accept_errors(loop: asyncio.AbstractEventLoop, log: RateLimitedLog) -> None:
    """Log the loop's ``accept()`` failures through ``log``; pass other errors on as before.

    Args:
        loop: The event loop serving the connections.
        log: The rate-limited log.
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = context.get("message", "")
        if message in _ACCEPT_ERRORS:
            log.event(
                "accept() failed",
                "Cannot accept a connection: %s: %s (the process's other files leave "
                "too few descriptors under the open files limit)",
                message,
                context.get("exception"),
            )
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
