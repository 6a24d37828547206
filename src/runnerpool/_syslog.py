"""Shipping functions' lines to an app's ``syslog_url``, in Fn's format, off the call's path.

Fn's own syslog writer (``api/agent/syslog.go``, before Fn handed the job to Docker's syslog
driver) writes each line as::

    <11>2 1982-06-25T12:00:00Z fn - - - - call_id=12345 func_name=yo/dawg app_name=myapp yo

facility ``user``, severity ``err`` (11) for stderr and ``info`` (14) for stdout, syslog
version ``2`` as Fn writes it, the time in UTC to the second, ``fn`` as the host name, then
the call, function and app, then the line and its newline. ``udp`` and ``unixgram`` send one
datagram per line; ``tcp``, ``tls`` (``tcp+tls``) and ``unix`` send lines over one connection
per URL, each ended by its newline.

Shipping never blocks a call: :meth:`SyslogShipper.send` only queues. Each URL's queue holds at
most ``max_queued_bytes``; lines beyond are dropped and counted, and the drops are logged at
most once every ``notice_every`` seconds per URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from ._resource import AsyncResource

__all__ = ["SyslogShipper", "fn_syslog_line"]

logger = logging.getLogger(__name__)

#: Fn's facility (``LOG_USER``) and severities (``LOG_INFO`` for stdout, ``LOG_ERR`` for stderr).
_USER = 1 << 3
_PRIORITY = {"stdout": _USER | 6, "stderr": _USER | 3}
#: Ports when the URL names none: syslog's (RFC 5426) and syslog over TLS's (RFC 5425).
_DEFAULT_PORT = {"udp": 514, "tcp": 514, "tls": 6514}
_SCHEMES = ("udp", "tcp", "tls", "tcp+tls", "unix", "unixgram")


def fn_syslog_line(
    line: bytes,
    *,
    source: Literal["stdout", "stderr"],
    call_id: str,
    fn_name: str,
    app_name: str,
    now: datetime | None = None,
) -> bytes:
    """Return one function line as Fn's syslog writer sends it, newline included.

    Args:
        line: The line, without its newline.
        source: The pipe it came from: the severity.
        call_id: The call that wrote it.
        fn_name: Fn's ``func_name`` field.
        app_name: Fn's ``app_name`` field.
        now: The time to write (default: now).
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = (
        f"<{_PRIORITY[source]}>2 {stamp} fn - - - - "
        f"call_id={call_id} func_name={fn_name} app_name={app_name} "
    )
    return head.encode() + line + b"\n"


class _Notices:
    """Counts one kind of trouble and logs it at most once every ``every`` seconds."""

    def __init__(self, every: float, clock: Callable[[], float]) -> None:
        self._every = every
        self._clock = clock
        self._last = -every
        self.pending = 0
        self.reason = ""

    def add(self, count: int, reason: str, url: str) -> None:
        self.pending += count
        self.reason = reason
        if self._clock() - self._last >= self._every:
            self.report(url)

    def report(self, url: str) -> None:
        if self.pending:
            self._last = self._clock()
            logger.warning(
                "syslog %s: %d line(s) dropped (%s)",
                url,
                self.pending,
                self.reason,
                extra={"syslog_url": url, "dropped": self.pending},
            )
            self.pending = 0


class _DatagramFlow(asyncio.DatagramProtocol):
    """Tells whether the datagram transport asked to pause (its buffer is full)."""

    def __init__(self) -> None:
        self.paused = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


class _Destination:
    """One syslog URL: its queue, its connection, and the task that writes one to the other."""

    def __init__(self, url: str, shipper: SyslogShipper) -> None:
        parts = urlsplit(url)
        scheme = "tls" if parts.scheme == "tcp+tls" else parts.scheme
        if scheme not in _DEFAULT_PORT and scheme not in ("unix", "unixgram"):
            raise ValueError(f"unsupported syslog scheme {parts.scheme!r}")
        if scheme in ("unix", "unixgram"):
            if not parts.path:
                raise ValueError("a unix syslog URL needs a path")
        elif not parts.hostname:
            raise ValueError("a syslog URL needs a host")
        self.url = url
        self._scheme = scheme
        self._host = parts.hostname or ""
        self._port = parts.port or _DEFAULT_PORT.get(scheme, 0)
        self._path = parts.path
        self._shipper = shipper
        self._queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self.drops = _Notices(shipper.notice_every, shipper.clock)
        self._stream: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._datagram: asyncio.DatagramTransport | None = None
        self._flow = _DatagramFlow()
        self.task: asyncio.Task[None] | None = None

    def put(self, message: bytes) -> None:
        if self.queued_bytes + len(message) > self._shipper.max_queued_bytes:
            self._drop(1, "queue full: the syslog server is slow or unreachable")
            return
        self._queue.append(message)
        self.queued_bytes += len(message)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _drop(self, count: int, reason: str) -> None:
        self._shipper.dropped += count
        self.drops.add(count, reason, self.url)

    async def run(self) -> None:
        """Write queued lines until idle for ``idle_close`` seconds, reconnecting as needed."""
        backoff = 0.5
        try:
            while True:
                if not self._queue:
                    if self._shipper.closed:
                        return
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(self._shipper.idle_close):
                            await self._wake.wait()
                    except TimeoutError:
                        return
                    continue
                if not self._connected():
                    try:
                        async with asyncio.timeout(self._shipper.connect_timeout):
                            await self._connect()
                        backoff = 0.5
                    except (OSError, TimeoutError, ssl.SSLError) as exc:
                        self._drop(len(self._queue), f"cannot connect: {str(exc) or 'timed out'}")
                        self._queue.clear()
                        self.queued_bytes = 0
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 30.0)
                        continue
                message = self._queue.popleft()
                self.queued_bytes -= len(message)
                try:
                    await self._write(message)
                except (OSError, ssl.SSLError) as exc:
                    self._drop(1, f"write failed: {exc}")
                    self._disconnect()
        finally:
            self._disconnect()
            self.drops.report(self.url)

    def _connected(self) -> bool:
        if self._datagram is not None:
            return not self._datagram.is_closing()
        if self._stream is None or self._reader is None:
            return False
        # A server that closed its end: the reader sees the end of the stream.
        return not (self._stream.is_closing() or self._reader.at_eof())

    async def _connect(self) -> None:
        self._disconnect()
        loop = asyncio.get_running_loop()
        if self._scheme == "udp":
            self._datagram, self._flow = await loop.create_datagram_endpoint(
                _DatagramFlow, remote_addr=(self._host, self._port)
            )
        elif self._scheme == "unixgram":
            self._datagram, self._flow = await loop.create_datagram_endpoint(
                _DatagramFlow, remote_addr=self._path, family=socket.AF_UNIX
            )
        elif self._scheme == "unix":
            self._reader, self._stream = await asyncio.open_unix_connection(self._path)
        else:
            context = self._shipper.tls_context() if self._scheme == "tls" else None
            self._reader, self._stream = await asyncio.open_connection(
                self._host, self._port, ssl=context
            )

    async def _write(self, message: bytes) -> None:
        if self._datagram is not None:
            # asyncio buffers datagrams the kernel cannot take yet; past its high-water mark
            # (64 KiB) it pauses the protocol, and lines are dropped rather than buffered.
            if self._flow.paused:
                raise OSError("the socket's send buffer is full")
            self._datagram.sendto(message)
            return
        assert self._stream is not None
        self._stream.write(message)
        await self._stream.drain()

    def _disconnect(self) -> None:
        if self._datagram is not None:
            self._datagram.close()
            self._datagram = None
        if self._stream is not None:
            self._stream.close()
            self._stream = self._reader = None


class SyslogShipper(AsyncResource):
    """Sends lines to syslog servers in the background, one connection per URL, bounded.

    A slow or dead server never blocks the caller of :meth:`send` and never grows memory
    beyond ``max_queued_bytes`` per URL: lines that do not fit are dropped and counted
    (:attr:`dropped`). A connection idle for ``idle_close`` seconds is closed; the next line
    opens it again. ``tls`` checks the server's certificate against the system's trust store
    (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are honoured, as OpenSSL does).

    Args:
        max_queued_bytes: The most bytes waiting for one URL.
        connect_timeout: Seconds a connection may take.
        idle_close: Seconds a connection stays open with nothing to send.
        notice_every: Drops of one URL are logged at most this often, in seconds.
        clock: Monotonic seconds, for the notices.
    """

    def __init__(
        self,
        *,
        max_queued_bytes: int = 1 << 20,
        connect_timeout: float = 5.0,
        idle_close: float = 60.0,
        notice_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_queued_bytes = max_queued_bytes
        self.connect_timeout = connect_timeout
        self.idle_close = idle_close
        self.notice_every = notice_every
        self.clock = clock
        #: Lines dropped so far, for every URL.
        self.dropped = 0
        self._destinations: dict[str, _Destination] = {}
        self._invalid: set[str] = set()
        self._tls: ssl.SSLContext | None = None
        #: Whether :meth:`aclose` was called: nothing more is queued.
        self.closed = False

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context of ``tls`` URLs: the system's trust store, made once."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def send(self, url: str, message: bytes) -> None:
        """Queue one message for ``url``; never waits.

        An invalid URL is logged once and its messages are dropped.
        """
        if self.closed or url in self._invalid:
            return
        destination = self._destinations.get(url)
        if destination is None:
            try:
                destination = _Destination(url, self)
            except ValueError as exc:
                self._invalid.add(url)
                logger.warning("syslog %s: not used: %s", url, exc, extra={"syslog_url": url})
                return
            self._destinations[url] = destination
        destination.put(message)
        if destination.task is None:
            destination.task = asyncio.get_running_loop().create_task(self._run(destination))

    async def _run(self, destination: _Destination) -> None:
        try:
            await destination.run()
        finally:
            if self._destinations.get(destination.url) is destination:
                del self._destinations[destination.url]

    async def aclose(self, flush_timeout: float = 1.0) -> None:
        """Send what is queued for at most ``flush_timeout`` seconds, then close everything."""
        self.closed = True
        tasks = [d.task for d in self._destinations.values() if d.task is not None]
        if tasks:
            for destination in self._destinations.values():
                destination.wake()
            _, pending = await asyncio.wait(tasks, timeout=flush_timeout)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        self._destinations.clear()
