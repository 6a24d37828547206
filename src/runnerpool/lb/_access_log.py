"""The load balancer's access log: one line per call, with what placing it did.

An ASGI middleware around the front end. For each call (``/invoke/...`` and the HTTP
triggers, ``/t/...``) it logs, once the response is sent: method, path, status, duration, call
id, function id, the runner that took the call and the number of runners offered it. The
runner and the attempts come from a :class:`~runnerpool._context.Placement` the middleware
sets before the call, which the placer's tracker fills in. uvicorn's own access log stays
off: it would repeat these lines with less in them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .._context import Placement, placement
from .._logging import ACCESS_LOGGER

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog"]

logger = logging.getLogger(ACCESS_LOGGER)

_INVOKE = "/invoke/"
#: The paths whose requests are calls.
_CALLS = (_INVOKE, "/t/")


class AccessLog:
    """Log a line per call (``/invoke/...``, ``/t/...``); pass other requests through untouched.

    The line, at INFO on the ``runnerpool.access`` logger, reads
    ``POST /invoke/hello 200 12.3 ms call_id=... fn_id=hello runner_addr=... attempts=1``;
    its fields (``method``, ``path``, ``status``, ``duration_ms``, ``call_id``, ``fn_id``,
    ``runner_addr``, ``attempts``) are also the record's ``extra``, so the JSON format has
    them as keys. A field with no value (no runner took the call) is ``-`` in the text and
    left out of the JSON.

    Args:
        app: The front end.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; log it if it is a call."""
        if scope["type"] != "http" or not scope["path"].startswith(_CALLS):
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        record = Placement()
        token = placement.set(record)
        status = 500  # what uvicorn answers if the application fails before answering
        call_id: str | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status, call_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"fn-call-id":
                        call_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            placement.reset(token)
            self._log(scope, status, time.monotonic() - start, call_id, record)

    @staticmethod
    def _log(
        scope: Scope, status: int, seconds: float, call_id: str | None, record: Placement
    ) -> None:
        path: str = scope["path"]
        fields = {
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "call_id": call_id,
            "fn_id": record.fn_id
            or (path.removeprefix(_INVOKE) if path.startswith(_INVOKE) else None),
            "runner_addr": record.runner,
            "attempts": record.attempts,
        }
        logger.info(
            "%s %s %d %.1f ms call_id=%s fn_id=%s runner_addr=%s attempts=%d",
            fields["method"],
            path,
            status,
            seconds * 1000,
            call_id or "-",
            fields["fn_id"] or "-",
            record.runner or "-",
            record.attempts,
            extra=fields,
        )
