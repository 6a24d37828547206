"""Recent function output, kept for ``StreamLogs`` collectors, bounded.

Each collector reads every line the book holds once, from the oldest it still holds, in the
order written, then follows new lines; collectors do not take lines from one another, so an
operator's ``runnerpool logs`` and a log shipper can read at the same time. A collector whose
``Start`` config has ``follow = "false"`` (a runnerpool extension; Fn leaves the config to the
log streamer) gets what the book holds and then the stream ends.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from ..runner import ContainerLogs, LogLine, RequestLogs

__all__ = ["LogBook"]

#: The most line bytes one batch carries (grpclib refuses messages over 4 MiB).
_BATCH_BYTES = 1 << 20


@dataclass(slots=True)
class _Entry:
    app_id: str
    fn_id: str
    container_id: str
    request_id: str
    seqs: list[int] = field(default_factory=list)
    lines: list[LogLine] = field(default_factory=list)
    size: int = 0
    kept: bool = True


class LogBook:
    """Recent function output, by process and call, for ``StreamLogs``.

    Bounded: the lines of the last ``max_calls`` calls, at most ``max_lines`` lines each (later
    lines of a call are dropped), and at most ``max_bytes`` bytes of lines in all (the oldest
    calls' lines go first).

    Args:
        max_calls: How many calls' lines are kept; older ones are dropped.
        max_lines: How many lines of one call are kept.
        max_bytes: How many bytes of lines are kept in all.
    """

    def __init__(self, max_calls: int = 1000, max_lines: int = 1000, max_bytes: int = 8 << 20):
        self.max_calls = max_calls
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        self._seq = 0
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, app_id: str, fn_id: str, container_id: str, request_id: str) -> _Entry:
        """Start the lines of one call."""
        if len(self._entries) >= self.max_calls:
            self._forget()
        entry = _Entry(app_id, fn_id, container_id, request_id)
        self._entries.append(entry)
        return entry

    def append(self, entry: _Entry, line: LogLine) -> None:
        """Keep one line of a call (unless the call has its ``max_lines``); wake collectors."""
        if not entry.kept or len(entry.lines) >= self.max_lines:
            return
        self._seq += 1
        entry.seqs.append(self._seq)
        entry.lines.append(line)
        entry.size += len(line.data)
        self._bytes += len(line.data)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            self._forget()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _forget(self) -> None:
        old = self._entries.popleft()
        old.kept = False
        self._bytes -= old.size

    async def stream(self, config: Mapping[str, str]) -> AsyncIterator[Sequence[ContainerLogs]]:
        """Yield the lines held, then new ones as they come, grouped by process and call.

        With ``config["follow"] == "false"``, stop after the lines held now.
        """
        cursor = self._oldest() - 1
        end = self._seq if config.get("follow", "true").lower() == "false" else None
        while end is None or cursor < end:
            if self._seq <= cursor:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
                continue
            batch, cursor = self._batch(max(cursor, self._oldest() - 1), end)
            if batch:
                yield batch

    def _oldest(self) -> int:
        for entry in self._entries:
            if entry.seqs:
                return entry.seqs[0]
        return self._seq + 1

    def _batch(self, cursor: int, end: int | None) -> tuple[list[ContainerLogs], int]:
        """Return the lines after ``cursor`` (to ``end``), at most ``_BATCH_BYTES`` of them."""
        found: list[tuple[int, _Entry, LogLine]] = []
        for entry in self._entries:
            if entry.seqs and entry.seqs[-1] > cursor:
                for index in range(bisect_right(entry.seqs, cursor), len(entry.seqs)):
                    found.append((entry.seqs[index], entry, entry.lines[index]))
        found.sort(key=lambda item: item[0])
        # Lines after the cursor that are not found were forgotten: the cursor skips them.
        last = self._seq if end is None else min(self._seq, end)
        containers: dict[str, dict[str, list[LogLine]]] = {}
        owners: dict[str, _Entry] = {}
        size = 0
        for number, (seq, entry, line) in enumerate(found):
            if end is not None and seq > end:
                break
            if size and size + len(line.data) > _BATCH_BYTES:
                last = found[number - 1][0]
                break
            size += len(line.data)
            owners.setdefault(entry.container_id, entry)
            requests = containers.setdefault(entry.container_id, {})
            requests.setdefault(entry.request_id, []).append(line)
        batch = [
            ContainerLogs(
                owners[container].app_id,
                owners[container].fn_id,
                container,
                [RequestLogs(request, lines) for request, lines in requests.items()],
            )
            for container, requests in containers.items()
        ]
        return batch, last
