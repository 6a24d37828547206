"""Functions' lines in the runner's log and in their app's syslog, bounded.

Every line a function process writes is logged at INFO on the ``runnerpool.function`` logger,
with ``call_id``, ``fn_id``, ``app_id``, ``container_id`` and ``stream`` as ``extra`` fields
(Fn logs them with the same ids, as ``user_log``), and is sent to the ``syslog_url`` of the
call's app, if it has one.

Bounds, so that a function cannot flood the runner: a line is cut at :data:`MAX_LINE` bytes
(with a marker saying how much was cut); each process may log :data:`BURST` lines at once and
:data:`RATE` lines a second on average (a token bucket), and the lines over that are not
logged, only counted, in a warning at most every :data:`NOTICE_EVERY` seconds. Syslog shipping
has its own bound (:class:`~runnerpool._syslog.SyslogShipper`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from .._logging import FUNCTION_LOGGER
from .._resource import AsyncResource
from .._syslog import SyslogShipper, fn_syslog_line

if TYPE_CHECKING:
    from .._model import Call

__all__ = ["BURST", "FUNCTION_LOGGER", "MAX_LINE", "RATE", "FunctionLog", "ProcessLog", "clip"]

#: The longest line logged or shipped, in bytes; the rest is replaced by a marker.
MAX_LINE = 8192
#: Lines one process may log at once, and per second on average.
BURST = 1000
RATE = 200.0
#: The least time between two warnings about one process's lines not logged, in seconds.
NOTICE_EVERY = 10.0

logger = logging.getLogger(FUNCTION_LOGGER)


def clip(line: bytes, limit: int = MAX_LINE) -> bytes:
    """Return ``line`` without its line end, cut to ``limit`` bytes with a marker if longer."""
    line = line.rstrip(b"\r\n")
    if len(line) <= limit:
        return line
    return line[:limit] + b"... [%d bytes cut]" % (len(line) - limit)


class FunctionLog(AsyncResource):
    """Where functions' lines go besides their calls: the runner's log and apps' syslog.

    Args:
        syslog: Ships lines to apps' ``syslog_url``; ``None``: lines are not shipped.
        rate: Lines a second one process may log, on average.
        burst: Lines one process may log at once.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        syslog: SyslogShipper | None = None,
        *,
        rate: float = RATE,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.syslog = syslog
        self.rate = rate
        self.burst = burst
        self.clock = clock

    def process(self, model: Call) -> ProcessLog:
        """Return the log of a new process of ``model``'s function."""
        return ProcessLog(self, model)

    async def aclose(self) -> None:
        """Send what syslog still holds (briefly), then close its connections."""
        if self.syslog is not None:
            await self.syslog.aclose()


class ProcessLog:
    """The log of one function process: its ids, its syslog URLs and its rate bound.

    Lines written outside a call carry no call id in the runner's log; in syslog they carry
    the id of the call that started the process, as Fn's do.

    Args:
        owner: The runner's function log.
        model: The call that starts the process.
    """

    def __init__(self, owner: FunctionLog, model: Call) -> None:
        self._owner = owner
        self.app_id = model.app_id
        self.fn_id = model.fn_id
        self._app_name = model.app_name or model.app_id
        self._first_call = model.id
        self._urls = [url.strip() for url in model.syslog_url.split(",") if url.strip()]
        #: The process's id, once it is known.
        self.container_id = ""
        self._tokens = float(owner.burst)
        self._refilled = owner.clock()
        self._unlogged = 0
        self._noticed = -NOTICE_EVERY

    def line(self, data: bytes, source: Literal["stdout", "stderr"], call_id: str | None) -> None:
        """Log one line and ship it to the app's syslog."""
        logged = logger.isEnabledFor(logging.INFO)
        if not (logged or self._urls):
            return
        line = clip(data)
        if self._urls and self._owner.syslog is not None:
            message = fn_syslog_line(
                line,
                source=source,
                call_id=call_id or self._first_call,
                fn_name=self.fn_id,
                app_name=self._app_name,
            )
            for url in self._urls:
                self._owner.syslog.send(url, message)
        if logged and self._take():
            fields = {
                "fn_id": self.fn_id,
                "app_id": self.app_id,
                "container_id": self.container_id,
                "stream": source,
            }
            if call_id is not None:
                fields["call_id"] = call_id
            logger.info("%s", line.decode(errors="replace"), extra=fields)

    def _take(self) -> bool:
        """Take a token of the bucket; count the line as not logged if there is none."""
        now = self._owner.clock()
        self._tokens = min(
            float(self._owner.burst), self._tokens + (now - self._refilled) * self._owner.rate
        )
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.notice()
            return True
        self._unlogged += 1
        return False

    def notice(self, *, force: bool = False) -> None:
        """Log how many lines were not logged, if any, at most every ``NOTICE_EVERY`` s."""
        now = self._owner.clock()
        if self._unlogged and (force or now - self._noticed >= NOTICE_EVERY):
            self._noticed = now
            logger.warning(
                "%d line(s) of function %s not logged: over %d lines at once or %g a second",
                self._unlogged,
                self.fn_id,
                self._owner.burst,
                self._owner.rate,
                extra={
                    "fn_id": self.fn_id,
                    "app_id": self.app_id,
                    "container_id": self.container_id,
                    "stream": "runner",
                },
            )
            self._unlogged = 0
