"""Logging of events a client can cause at will, at a bounded rate.

An attacker decides how often a connection is refused or an ``accept()`` fails; one log line
per event let 20 000 idle connections grow the log by 156 MB in 25 s. Here the first event
of a kind is logged at once, and the others of the same kind within the next interval are
counted and logged as one line when it ends.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs each kind of event at most once per interval, with a count of the rest.

    Args:
        logger: Where the lines go.
        interval: Seconds between two lines of the same kind.
        level: The lines' level.
    """

    def __init__(
        self, logger: logging.Logger, interval: float = 10.0, level: int = logging.WARNING
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        self._suppressed: dict[str, int] = {}
        self._windows: dict[str, asyncio.TimerHandle] = {}

    def event(self, kind: str, message: str, *args: object) -> None:
        """Record one event: log it if it is the first of its kind in the interval.

        Args:
            kind: What happened; the events of one kind share a rate.
            message: The log message (%-style), for the first event of an interval.
            *args: Its arguments.
        """
        if kind in self._windows:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self.logger.log(self.level, message, *args)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test, or shutdown): nothing to count against
            return
        self._windows[kind] = loop.call_later(self.interval, self._end_window, kind)

    def _end_window(self, kind: str) -> None:
        del self._windows[kind]
        count = self._suppressed.pop(kind, 0)
        if count:
            self.logger.log(
                self.level,
                "%d more: %s (in the last %g s; one line per %g s)",
                count,
                kind,
                self.interval,
                self.interval,
            )

    def close(self) -> None:
        """Log what is still counted, and stop the timers."""
        for kind, timer in list(self._windows.items()):
            timer.cancel()
            self._end_window(kind)
