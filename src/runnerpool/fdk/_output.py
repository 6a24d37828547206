"""A function process's output: each line to the call in flight and to the log book.

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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeAlias

from ..runner._logs import ContainerLogs, LogLine, RequestLogs

if TYPE_CHECKING:
    from .._interfaces import LogWriter

__all__ = ["LogBook", "OutputPipes", "OutputSink"]

#: How many lines a process keeps when no call is in flight (start-up errors, for one).
_SPARE_LINES = 50
#: A line longer than this is passed on in pieces.
_MAX_LINE = 1 << 20
#: The longest a call's end waits for its function's output to be read, in seconds.
_SETTLE_LIMIT = 0.1

#: Which pipe a line came from.
Source: TypeAlias = Literal["stdout", "stderr"]


@dataclass(slots=True)
class _Entry:
    app_id: str
    fn_id: str
    container_id: str
    request_id: str
    lines: list[LogLine] = field(default_factory=list)


class LogBook:
    """Recent function output, by process and call, for ``StreamLogs``.

    What no collector takes is bounded: the lines of the last ``max_calls`` calls, at most
    ``max_lines`` lines each (later lines of a call are dropped).

    Args:
        max_calls: How many calls' lines are kept; older ones are dropped.
        max_lines: How many lines of one call are kept until a collector takes them.
    """

    def __init__(self, max_calls: int = 1000, max_lines: int = 1000) -> None:
        self.max_lines = max_lines
        self._entries: deque[_Entry] = deque(maxlen=max_calls)
        self._changed = asyncio.Event()
        self._sent = 0
        self._appended = 0

    def add(self, app_id: str, fn_id: str, container_id: str, request_id: str) -> _Entry:
        """Start the lines of one call."""
        entry = _Entry(app_id, fn_id, container_id, request_id)
        self._entries.append(entry)
        self._appended += 1
        return entry

    def notify(self) -> None:
        """Wake collectors: lines were written."""
        self._changed.set()

    async def stream(self, config: Mapping[str, str]) -> AsyncIterator[Sequence[ContainerLogs]]:
        """Yield what was written since the last batch, grouped by process, as it comes."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            batch: dict[str, ContainerLogs] = {}
            for entry in list(self._entries):
                lines = entry.lines[:]
                if not lines:
                    continue
                entry.lines.clear()
                logs = batch.get(entry.container_id)
                requests = [] if logs is None else list(logs.requests)
                requests.append(RequestLogs(entry.request_id, lines))
                batch[entry.container_id] = ContainerLogs(
                    entry.app_id, entry.fn_id, entry.container_id, requests
                )
            if batch:
                yield list(batch.values())


class OutputSink:
    """Where one process's output lines go: the call in flight (its ``stderr``) and the book.

    Args:
        book: The runner's log book, or ``None``.
        app_id: The function's app.
        fn_id: The function.
        container_id: The process's id.
    """

    def __init__(self, book: LogBook | None, app_id: str, fn_id: str, container_id: str) -> None:
        self._book = book
        self._app_id = app_id
        self._fn_id = fn_id
        #: The process's id, once it is known.
        self.container_id = container_id
        self._call: LogWriter | None = None
        self._entry: _Entry | None = None
        #: The last lines written while no call was in flight.
        self.spare: deque[bytes] = deque(maxlen=_SPARE_LINES)
        self._partial: dict[Source, bytes] = {"stdout": b"", "stderr": b""}

    def begin(self, request_id: str, writer: LogWriter) -> None:
        """Attribute lines to this call from now on."""
        self._call = writer
        if self._book is not None:
            self._entry = self._book.add(self._app_id, self._fn_id, self.container_id, request_id)

    def end(self) -> None:
        """The call ended: lines are no longer its own."""
        self._call = self._entry = None

    def write(self, line: bytes, source: Source) -> None:
        """Take one line of output."""
        if self._call is None:
            self.spare.append(line)
            return
        self._call.write(line)
        entry, book = self._entry, self._book
        if entry is not None and book is not None and len(entry.lines) < book.max_lines:
            entry.lines.append(LogLine(int(time.time() * 1000), line, source))
            book.notify()

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
