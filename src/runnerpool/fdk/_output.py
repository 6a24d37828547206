"""A function process's output: each line to the call in flight, the log book and the log.

Fn merges a container's stdout into its stderr stream and attributes lines to the call the
container runs; one call at a time per process makes that attribution exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeAlias

from ..runner import LogLine
from ._function_log import clip
from ._log_book import LogBook

if TYPE_CHECKING:
    from .._interfaces import LogWriter
    from ._function_log import ProcessLog
    from ._log_book import _Entry

__all__ = ["LogBook", "OutputPipes", "OutputSink"]

#: How many lines a process keeps when no call is in flight (start-up errors, for one).
_SPARE_LINES = 50
#: A line longer than this is passed on in pieces.
_MAX_LINE = 1 << 20
#: The most kept of one line written outside a call.
_SPARE_LINE = 8192
#: The longest a call's end waits for its function's output to be read, in seconds.
_SETTLE_LIMIT = 0.1
#: How much of its output a call's own log keeps (Fn's FN_MAX_LOG_SIZE_BYTES default).
MAX_CALL_LOG = 1 << 20

#: Which pipe a line came from.
Source: TypeAlias = Literal["stdout", "stderr"]


class OutputSink:
    """Where one process's output lines go: the call in flight, the log book and the log.

    The call's own log (its ``stderr``) keeps at most :data:`MAX_CALL_LOG` bytes, then Fn's
    truncation marker; the book and the runner's log keep each line cut to
    :data:`~runnerpool.fdk._function_log.MAX_LINE` bytes.

    Args:
        book: The runner's log book, or ``None``.
        app_id: The function's app.
        fn_id: The function.
        container_id: The process's id.
        log: The process's lines in the runner's log and syslog, or ``None``.
    """

    def __init__(
        self,
        book: LogBook | None,
        app_id: str,
        fn_id: str,
        container_id: str,
        log: ProcessLog | None = None,
    ) -> None:
        self._book = book
        self._app_id = app_id
        self._fn_id = fn_id
        self._container_id = container_id
        self._log = log
        self._call: LogWriter | None = None
        self._call_id: str | None = None
        self._call_bytes = 0
        self._entry: _Entry | None = None
        #: The last lines written while no call was in flight.
        self.spare: deque[bytes] = deque(maxlen=_SPARE_LINES)
        self._partial: dict[Source, bytes] = {"stdout": b"", "stderr": b""}

    @property
    def container_id(self) -> str:
        """The process's id, once it is known."""
        return self._container_id

    @container_id.setter
    def container_id(self, value: str) -> None:
        self._container_id = value
        if self._log is not None:
            self._log.container_id = value

    def begin(self, request_id: str, writer: LogWriter) -> None:
        """Attribute lines to this call from now on."""
        self._call = writer
        self._call_id = request_id
        self._call_bytes = 0
        if self._book is not None:
            self._entry = self._book.add(self._app_id, self._fn_id, self.container_id, request_id)

    def end(self) -> None:
        """The call ended: lines are no longer its own."""
        self._call = self._entry = self._call_id = None
        if self._log is not None:
            self._log.notice()

    def write(self, line: bytes, source: Source) -> None:
        """Take one line of output."""
        if self._log is not None:
            self._log.line(line, source, self._call_id)
        if self._call is None:
            self.spare.append(line[:_SPARE_LINE])
            return
        self._write_call(line)
        entry, book = self._entry, self._book
        if entry is not None and book is not None:
            book.append(entry, LogLine(int(time.time() * 1000), clip(line) + b"\n", source))

    def _write_call(self, line: bytes) -> None:
        """Write to the call's own log, up to :data:`MAX_CALL_LOG` bytes, as Fn's limit does."""
        assert self._call is not None
        room = MAX_CALL_LOG - self._call_bytes
        if room <= 0:
            return
        self._call.write(line[:room])
        self._call_bytes += len(line)
        if self._call_bytes >= MAX_CALL_LOG:
            self._call.write(
                b"\n-----max log size %d bytes exceeded, truncating log-----\n" % MAX_CALL_LOG
            )

    def feed(self, data: bytes, source: Source) -> None:
        """Take bytes read from a pipe; pass on each complete line."""
        pending = self._partial[source] + data
        *lines, rest = pending.split(b"\n")
        for line in lines:
            self.write(line + b"\n", source)
        if len(rest) > _MAX_LINE:
            # No newline for that long: pass it on as it is, rather than hold it.
            self.write(rest, source)
            rest = b""
        self._partial[source] = rest

    def flush(self) -> None:
        """Pass on the unfinished last line of each pipe, as it is."""
        for source, rest in self._partial.items():
            if rest:
                self._partial[source] = b""
                self.write(rest, source)


class OutputPipes:
    """The stdout and stderr pipes of one process, read into its :class:`OutputSink`.

    The runner makes the pipes itself (rather than through ``asyncio.subprocess``) so that it
    can tell when everything the function wrote has been read: what a function writes before
    it answers belongs to the call, though the pipe may be read after the answer arrived.

    Args:
        sink: Where the output goes.
    """

    def __init__(self, sink: OutputSink) -> None:
        self.sink = sink
        stdout_read, self.stdout = os.pipe()
        stderr_read, self.stderr = os.pipe()
        self._read: dict[Source, int] = {"stdout": stdout_read, "stderr": stderr_read}
        self._transports: list[asyncio.ReadTransport] = []
        self._closed: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        """Start reading; call once the process is started, so the write ends can close."""
        os.close(self.stdout)
        os.close(self.stderr)
        loop = asyncio.get_running_loop()
        for source, fd in self._read.items():
            closed = loop.create_future()
            transport, _ = await loop.connect_read_pipe(
                partial(_PipeReader, self.sink, source, closed), os.fdopen(fd, "rb", buffering=0)
            )
            self._transports.append(transport)
            self._closed.append(closed)

    def discard(self) -> None:
        """Close every end, unread (when the process could not be started)."""
        for fd in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)
        for fd in self._read.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def _unread(self) -> int:
        total = 0
        for fd in self._read.values():
            with contextlib.suppress(OSError):
                total += struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return total

    async def settle(self, limit: float = _SETTLE_LIMIT) -> None:
        """Read what the pipes hold now, then pass on unfinished lines.

        A function that keeps writing (a thread, say) is not waited for beyond ``limit``
        seconds.
        """
        deadline = time.monotonic() + limit
        # Each turn of the loop reads what the pipes hold; the kernel says when none is left.
        while self._unread() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0)
        self.sink.flush()

    async def wait_closed(self, seconds: float) -> None:
        """Wait until both pipes reach their end (the process and its children are gone)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.gather(*self._closed)
        for transport in self._transports:
            transport.close()


class _PipeReader(asyncio.Protocol):
    """Feeds what one pipe delivers to a sink."""

    def __init__(self, sink: OutputSink, source: Source, closed: asyncio.Future[None]) -> None:
        self._sink = sink
        self._source = source
        self._closed = closed

    def data_received(self, data: bytes) -> None:
        self._sink.feed(data, self._source)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sink.flush()
        if not self._closed.done():
            self._closed.set_result(None)
