"""uvicorn's httptools protocol with the load balancer's edge limits.

uvicorn (0.55) on httptools has no limit on a request head: llhttp leaves that to its user,
and httptools gathers each header whole, so ten requests with 30 MB of headers took the load
balancer from 41 MB to 1.1 GB. It has no timeout for a head or a body either, and counts no
connections. :class:`EdgeProtocol` adds, in the protocol, before the application runs:

* the head's size: bytes are counted while a head is incomplete, so a head larger than
  :attr:`EdgeLimits.max_header_size` is cut after at most one more read (431);
* a head timeout and a body timeout (408), and uvicorn's keep-alive timeout in seconds;
* the connection cap of :class:`~runnerpool.lb._connections.ConnectionTable`: past it, 503,
  but ``GET /health`` is answered.

A refused request gets its answer with ``Connection: close``; the connection then stops
parsing, half-closes, and reads and drops what the client still sends for a moment (a
*lingering close*), so the client reads the answer rather than a reset.

It relies on uvicorn's ``HttpToolsProtocol`` internals (``parser``, ``cycle``, ``pipeline``,
``url``, ``headers``, the keep-alive timer), hence the upper bound on uvicorn in
``pyproject.toml``; ``tests/lb/test_edge.py`` runs it against a real server.
"""

from __future__ import annotations

import asyncio
import http
import json
import math
from typing import TYPE_CHECKING, Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ._connections import Admission, ConnectionTable
from ._limits import EdgeLimits
from ._ratelog import RateLimitedLog

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

    from .._uvicorn_private import ServerState

__all__ = ["ALWAYS_SERVED", "EdgeConfig", "EdgeProtocol"]

#: Paths served even past the connection cap, so that orchestrators see the process alive
#: (liveness) and whether it has runners to send calls to (readiness).
ALWAYS_SERVED = frozenset({b"/health", b"/ready"})

#: A refused connection reads and drops the client's data for this long, at most...
LINGER_SECONDS = 2.0
#: ...and this many bytes, before it closes.
LINGER_BYTES = 64 * 1024 * 1024

_JSON = b"application/json; charset=utf-8"


class EdgeConfig(uvicorn.Config):
    """uvicorn's configuration for the load balancer: its protocol, limits and connections.

    Args:
        app: The ASGI application.
        limits: The edge limits.
        connections: The table of open connections (its cap may be below ``limits``'s, to
            fit the open files limit).
        log: Where refusals, evictions and accept errors are logged, at a bounded rate.
        **kwargs: More of uvicorn's options.
    """

    def __init__(
        self,
        app: Any,
        *,
        limits: EdgeLimits,
        connections: ConnectionTable,
        log: RateLimitedLog,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            http=EdgeProtocol,
            ws="none",
            timeout_keep_alive=math.ceil(limits.keepalive_timeout),
            **kwargs,
        )
        self.limits = limits
        self.connections = connections
        self.edge_log = log


class _Refusal(Exception):
    """Raised in a parser callback to refuse the request being parsed.

    Args:
        status: The answer's status.
        message: The answer's message.
        of_body: Whether the request's head was complete (it is then the current cycle's);
            otherwise the refused request has no cycle yet.
    """

    def __init__(self, status: int, message: str, *, of_body: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.of_body = of_body


def _response(status: int, message: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    body = json.dumps({"message": message}, separators=(",", ":")).encode() + b"\n"
    phrase = http.HTTPStatus(status).phrase.encode()
    lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
    lines += [name + b": " + value for name, value in headers]
    lines += [
        b"content-type: " + _JSON,
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    if status == 503:
        lines.append(b"retry-after: 15")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _over_capacity(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """Answer 503 "too many connections" (Fn's error shape) and close the connection."""
    body = b'{"message":"Server too busy: too many connections"}\n'
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", _JSON),
                (b"content-length", b"%d" % len(body)),
                (b"retry-after", b"15"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class EdgeProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection of the load balancer, within its :class:`EdgeLimits`.

    Args:
        config: The server's :class:`EdgeConfig`.
        server_state: uvicorn's state shared by the connections.
        app_state: The lifespan state.
        _loop: The event loop.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        assert isinstance(config, EdgeConfig)
        self._limits = config.limits
        self._table: ConnectionTable = config.connections
        self._log = config.edge_log
        self._served_app = self.app
        self._over_cap = False
        self._head_open = False
        self._in_body = False
        self._heads = 0
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._lingering = -1  # bytes dropped since the refusal; -1: not refused

    # -- Connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection, or close it at once when it is past the cap's reserve."""
        super().connection_made(transport)
        admission = self._table.admit(self)
        if admission is Admission.REFUSED:
            self._log.event(
                "connection closed: past --max-connections and its reserve",
                "Closing new connections: %d open, past --max-connections (%d) and its "
                "reserve (%d), none idle",
                self._table.open,
                self._table.max_connections,
                self._table.reserve,
            )
            transport.abort()
            return
        self._over_cap = admission is Admission.OVER_CAP
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection and stop its timers."""
        self._table.release(self)
        self._cancel_timers()
        super().connection_lost(exc)

    def evict(self) -> None:
        """Close this idle connection to make room for a new one."""
        self._log.event(
            "idle connection closed to make room",
            "Closing idle connections to make room for new ones: %d open (--max-connections)",
            self._table.max_connections,
        )
        self._cancel_timers()
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        """Parse ``data``, refusing a head that is too large, or drop it after a refusal."""
        if self._lingering >= 0:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.abort()
            return
        self._unset_keepalive_if_required()
        head = self._heads if self._head_open else -1
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade (WebSocket, h2c) is served: the request goes on as plain HTTP.
            return
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if not isinstance(refusal, _Refusal):
                refusal = _Refusal(400, "Invalid HTTP request")
            self._refuse(refusal)
            return
        # The clocks start once the data is parsed, and only for a head or a body still
        # incomplete: a request that came whole costs no timer.
        if self._head_open:
            # A head that began within this data may have had at most this data uncounted.
            if head == self._heads:
                self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_size:
                self._refuse(self._head_too_large())
            elif self._head_timer is None:
                self._arm_head_timer()
        elif self._in_body:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(
                    self._limits.body_timeout, self._body_timeout
                )
        elif self._head_timer is None and self.timeout_keep_alive_task is None and self._idle():
            # Bytes between requests that start none (blank lines): the head clock runs.
            self._arm_head_timer()

    # -- Parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """Start a request head, and its clock if the connection's is not running."""
        super().on_message_begin()
        self._head_open = True
        self._heads += 1
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """Check the whole head's size and the cap, then start the request and its body clock.

        Raises:
            _Refusal: If the head is too large (the parse stops and 431 is answered).
        """
        self._head_open = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits.max_header_size:
            raise self._head_too_large()
        self._table.busy(self)
        if self._over_cap and not self._table.over_cap:
            self._over_cap = False
        if self._over_cap and httptools.parse_url(self.url).path not in ALWAYS_SERVED:
            self._log.event(
                "request answered 503: past --max-connections",
                "Answering 503: %d connections open, every one of the %d of --max-connections busy",
                self._table.open,
                self._table.max_connections,
            )
            self.app = _over_capacity
        try:
            super().on_headers_complete()
        finally:
            self.app = self._served_app
        self._in_body = True

    def on_message_complete(self) -> None:
        """End the request's body, and its clock."""
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """Once the response is sent and nothing else is queued, the connection is idle."""
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:
            if self.timeout_keep_alive != self._limits.keepalive_timeout:
                # uvicorn's keep-alive timeout is whole seconds; ours may be a fraction.
                self.timeout_keep_alive_task.cancel()
                self.timeout_keep_alive_task = self.loop.call_later(
                    self._limits.keepalive_timeout, self.timeout_keep_alive_handler
                )
            self._table.idle(self)

    # -- Refusals --------------------------------------------------------------------------

    def _head_too_large(self) -> _Refusal:
        return _Refusal(
            431, f"Request header fields too large (over {self._limits.max_header_size} bytes)"
        )

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._head_open:
            # Nothing of a request came: reset, leaving no TIME_WAIT behind on this side.
            self.transport.abort()
            return
        self._refuse(
            _Refusal(408, f"Request head not received within {self._limits.header_timeout:g} s")
        )

    def _body_timeout(self) -> None:
        self._body_timer = None
        self._refuse(
            _Refusal(
                408,
                f"Request body not received within {self._limits.body_timeout:g} s",
                of_body=True,
            )
        )

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer ``refusal`` if no earlier response is due, then close lingering."""
        self._log.event(
            f"request refused with {refusal.status}",
            "Refusing a request from %s with %d: %s",
            "{}:{}".format(*self.client) if self.client else "?",
            refusal.status,
            refusal.message,
        )
        self._cancel_timers()
        self._head_open = False
        cycle: RequestResponseCycle | None = self.cycle
        if self.pipeline:
            answer = False  # an earlier request's response is still due
        elif refusal.of_body:
            answer = cycle is not None and not cycle.response_started
        else:
            answer = cycle is None or cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            # The application's request is over: its receive() says so, its response is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        if not answer or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write(
            _response(refusal.status, refusal.message, self.server_state.default_headers)
        )
        self.transport.write_eof()
        self._lingering = 0
        self.flow.resume_reading()
        self._table.idle(self, first=True)  # closed first to make room
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # -- Helpers ---------------------------------------------------------------------------

    def _idle(self) -> bool:
        cycle: RequestResponseCycle | None = self.cycle
        return not self.pipeline and (cycle is None or cycle.response_complete)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timeout)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._linger_timer = None
        self._unset_keepalive_if_required()
