"""A function process's output: each line to the call in flight and to the log book.

Fn merges a container's stdout into its stderr stream and attributes lines to the call the
container runs; one call at a time per process makes that attribution exact.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..runner._logs import ContainerLogs, LogLine, RequestLogs

if TYPE_CHECKING:
    from .._interfaces import LogWriter

__all__ = ["LogBook", "OutputSink"]

#: How many lines a process keeps when no call is in flight (start-up errors, for one).
_SPARE_LINES = 50


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

    def begin(self, request_id: str, writer: LogWriter) -> None:
        """Attribute lines to this call from now on."""
        self._call = writer
        if self._book is not None:
            self._entry = self._book.add(self._app_id, self._fn_id, self.container_id, request_id)

    def end(self) -> None:
        """The call ended: lines are no longer its own."""
        self._call = self._entry = None

    def write(self, line: bytes, source: Literal["stdout", "stderr"]) -> None:
        """Take one line of output."""
        if self._call is None:
            self.spare.append(line)
            return
        self._call.write(line)
        entry, book = self._entry, self._book
        if entry is not None and book is not None and len(entry.lines) < book.max_lines:
            entry.lines.append(LogLine(int(time.time() * 1000), line, source))
            book.notify()

    async def pump(self, stream: asyncio.StreamReader, source: Literal["stdout", "stderr"]) -> None:
        """Read a pipe to its end, line by line."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                # A line longer than the pipe's buffer limit: pass on what is buffered.
                line = await stream.read(65536)
            if not line:
                return
            self.write(line, source)
