"""One HTTP/2 connection to a runner that knows when its peer is gone.

grpclib's channel has keepalive settings (``Configuration._keepalive_time`` and friends), but
they do not detect a frozen or partitioned runner: by default a client sends at most two PINGs
without data, at least 300 s apart, and on a missed PING it closes the transport gracefully,
which waits for buffered writes that a frozen peer never reads, so the streams on it are never
ended. This module keeps grpclib for everything else and adds:

* a *verified* connect: the connection counts as made only once the runner's first HTTP/2
  frame (its SETTINGS) arrived, within the connect timeout. The kernel of a stopped process
  still completes TCP handshakes, so a TCP connect alone proves nothing;
* a watchdog: a PING whenever nothing came from the runner for ``keepalive.interval``
  seconds, and when nothing at all (no frame, no PING acknowledgement) came for
  ``interval + timeout`` seconds, the connection is aborted and every stream on it ends at
  once with :class:`~grpclib.exceptions.StreamTerminatedError`;
* a count of the streams this side opened, so that a full connection is never waited on
  (grpclib queues a stream beyond the peer's ``MAX_CONCURRENT_STREAMS`` until another ends).

The PING and the peer's stream limit are reached through grpclib's ``Connection`` object and
its h2 connection, the protocol and the connect through grpclib's channel: private parts of
grpclib, all reached through :mod:`runnerpool.rpc._grpclib_private` and checked by its test.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from grpclib.client import Handler
from grpclib.protocol import H2Protocol

from ._cork import CorkedH2Protocol
from ._grpclib_private import HookedChannel, end_streams, flush, h2_connection, write_ready

if TYPE_CHECKING:
    import ssl

    from grpclib.config import Configuration
    from grpclib.protocol import H2Protocol
    from h2.config import H2Configuration

__all__ = ["Keepalive", "RunnerChannel"]

logger = logging.getLogger(__name__)

#: Streams per connection when the runner does not say (h2's own default, which grpclib
#: servers advertise).
DEFAULT_STREAM_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Keepalive:
    """How a load balancer watches its connections to a runner.

    Attributes:
        interval: Seconds of silence from the runner after which a PING is sent.
        timeout: Seconds a PING may go unanswered (with nothing else received) before the
            connection is declared dead: a dead runner is found within
            ``interval + timeout`` seconds (plus a quarter of a second of checking).
        connect_timeout: Seconds a new connection may take, from the TCP connect to the
            runner's first HTTP/2 frame.
    """

    interval: float = 1.0
    timeout: float = 3.0
    connect_timeout: float = 1.0

    def __post_init__(self) -> None:
        for name in ("interval", "timeout", "connect_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"keepalive {name} must be a positive number, got {value!r}")

    @property
    def dead_after(self) -> float:
        """Seconds of silence after which a connection is declared dead."""
        return self.interval + self.timeout


class _WatchedProtocol(CorkedH2Protocol):
    """grpclib's HTTP/2 protocol, with the runner's first frame awaited and silence watched.

    Its writes are corked (:class:`~runnerpool.rpc._cork.CorkedTransport`); ``_transport`` is
    the socket transport itself, so that :meth:`kill` aborts at once.
    """

    def __init__(
        self,
        handler: Handler,
        config: Configuration,
        h2_config: H2Configuration,
        *,
        keepalive: Keepalive,
        on_lost: Callable[[_WatchedProtocol, str | None], None],
    ) -> None:
        super().__init__(handler, config, h2_config)
        self._keepalive = keepalive
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self.peer_ready: asyncio.Future[None] = self._loop.create_future()
        self.last_seen = time.monotonic()
        self._ping_sent = False
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self.lost = False
        self.kill_reason: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._transport = cast("asyncio.Transport", transport)
        self.last_seen = time.monotonic()
        self._schedule()

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self._ping_sent = False
        if not self.peer_ready.done():
            self.peer_ready.set_result(None)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_timer()
        if not self.peer_ready.done():
            self.peer_ready.set_exception(ConnectionError("connection lost before HTTP/2 setup"))
            self.peer_ready.exception()  # retrieved: nobody may be waiting any more
        was_lost, self.lost = self.lost, True
        super().connection_lost(exc)
        if not was_lost:
            self._on_lost(self, self.kill_reason)

    @property
    def stream_limit(self) -> int:
        """The runner's ``MAX_CONCURRENT_STREAMS`` (h2's default until its SETTINGS came)."""
        h2 = h2_connection(self)
        limit = getattr(getattr(h2, "remote_settings", None), "max_concurrent_streams", None)
        return DEFAULT_STREAM_LIMIT if not isinstance(limit, int) else limit

    def kill(self, reason: str) -> None:
        """End the connection now: every stream on it ends, nothing buffered is flushed."""
        if self.lost:
            return
        self.kill_reason = reason
        self._stop_timer()
        if not self.peer_ready.done():
            self.peer_ready.set_exception(ConnectionError(reason))
            self.peer_ready.exception()
        transport = self._transport
        # Ends every stream with StreamTerminatedError(reason) and marks the channel
        # disconnected; closes the transport gracefully, which abort() then overrides.
        end_streams(self, reason)
        if transport is not None:
            transport.abort()

    def _schedule(self) -> None:
        # Checked four times a second, or more often when the keepalive is shorter.
        step = min(0.25, self._keepalive.interval / 2, self._keepalive.timeout / 2)
        self._timer = self._loop.call_later(step, self._check)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        silence = time.monotonic() - self.last_seen
        if silence >= self._keepalive.dead_after:
            logger.debug("No frame from the runner for %.1f s", silence)
            self.kill(f"keepalive: no answer for {silence:.1f} s")
            return
        if silence >= self._keepalive.interval and not self._ping_sent:
            self._ping()
        self._schedule()

    def _ping(self) -> None:
        h2 = h2_connection(self)
        if h2 is None or self._transport is None or self._transport.is_closing():
            return
        h2.ping(struct.pack("!Q", time.monotonic_ns() & 0xFFFFFFFFFFFFFFFF))
        flush(self)
        self._ping_sent = True


class RunnerChannel(HookedChannel):
    """A grpclib channel holding at most one connection, watched for a dead runner.

    Unlike a plain :class:`grpclib.client.Channel`, it never reconnects by itself: once its
    connection was lost, :attr:`usable` is false and the owner opens a new channel.

    Args:
        host: The runner's host.
        port: The runner's port.
        ssl: TLS, or ``None`` for plain TCP.
        keepalive: Keepalive and connect settings.
        on_lost: Called (with the channel and, for a connection this side ended, the reason)
            when the connection is lost.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl.SSLContext | None,
        keepalive: Keepalive,
        on_lost: Callable[[RunnerChannel, str | None], None],
    ) -> None:
        super().__init__(host, port, ssl=ssl)
        self.keepalive = keepalive
        self._on_lost_callback = on_lost
        self._watched: _WatchedProtocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._write_ready: asyncio.Event | None = None
        self.streams = 0
        self.failed = False
        #: Set once connected, cleared when lost: plain attributes, read on every call.
        self.is_ready = False
        self.limit = DEFAULT_STREAM_LIMIT

    def make_protocol(
        self, handler: Handler, config: Configuration, h2_config: H2Configuration
    ) -> H2Protocol:
        """Return a watched protocol for the new connection."""
        protocol = _WatchedProtocol(
            handler, config, h2_config, keepalive=self.keepalive, on_lost=self._lost
        )
        self._watched = protocol
        return protocol

    def _lost(self, protocol: _WatchedProtocol, reason: str | None) -> None:
        self.failed = True
        self.is_ready = False
        if self.current_protocol() is protocol:
            self.drop_connection()  # grpclib's reference to the dead connection goes too
        # A connection that never got the runner's first frame is a connect failure,
        # reported by connect() itself.
        ready = protocol.peer_ready
        if ready.done() and not ready.cancelled() and ready.exception() is None:
            self._on_lost_callback(self, reason)

    def before_connect(self) -> None:
        """Refuse to reconnect: once lost, the connection stays lost."""
        # grpclib reconnects a channel whose connection was lost; this one never does, so
        # that a call can never land on a new connection its owner did not open.
        watched = self._watched
        if self.failed or (watched is not None and (watched.lost or watched.kill_reason)):
            raise ConnectionResetError("the connection to the runner was lost")

    @property
    def writable(self) -> bool:
        """Whether the connection takes writes now (its send buffer is not full)."""
        write_ready = self._write_ready
        return write_ready is not None and write_ready.is_set()

    @property
    def usable(self) -> bool:
        """Whether new streams may still be opened on this channel (connecting or connected)."""
        return not self.failed and not (self._watched is not None and self._watched.lost)

    @property
    def ready(self) -> bool:
        """Whether the connection is made, the runner has spoken, and it was not lost since."""
        return self.is_ready

    def has_room(self) -> bool:
        """Whether one more stream fits within the runner's limit on this connection.

        The limit is the runner's ``MAX_CONCURRENT_STREAMS`` as of the connect.
        """
        return self.streams < self.limit

    async def connect(self) -> None:
        """Make the connection (once; concurrent callers share the attempt).

        Raises:
            OSError: If the runner refused or could not be reached in time (``TimeoutError``).
        """
        if self.ready:
            return
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        # Shielded: a caller that gives up (its client left) must not abort the others' attempt.
        await asyncio.shield(self._connecting)

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self.keepalive.connect_timeout):
                await self.open_connection()
                watched = self._watched
                assert watched is not None
                await watched.peer_ready
        except BaseException as exc:
            self.failed = True
            self.is_ready = False
            if self._watched is not None:
                self._watched.kill("connect failed")
            self.drop_connection()
            if isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"no HTTP/2 answer within {self.keepalive.connect_timeout:g} s"
                ) from None
            raise
        if not (self.failed or watched.lost):
            self.limit = watched.stream_limit
            self._write_ready = write_ready(watched)
            self.is_ready = True

    def kill(self, reason: str) -> None:
        """End the connection now; streams on it end with :class:`StreamTerminatedError`."""
        self.failed = True
        self.is_ready = False
        if self._watched is not None:
            self._watched.kill(reason)

    def close(self) -> None:
        """Close the connection (streams on it end)."""
        self.failed = True
        self.is_ready = False
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        watched = self._watched
        if watched is not None:
            watched.lost = True  # a close asked for is not a lost connection
        super().close()
