"""Functions' lines in the runner's log (bounded) and the log book's collectors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from runnerpool._model import Call
from runnerpool.fdk import LogBook
from runnerpool.fdk._function_log import FunctionLog, clip
from runnerpool.fdk._output import OutputSink
from runnerpool.runner._logs import ContainerLogs, LogLine


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sink:
    """A call's own log."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """What ``runnerpool.function`` logged at ``level``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "runnerpool.function" and r.levelno == level
    ]


class TestClip:
    def test_short_line_loses_only_its_newline(self) -> None:
        """A line within the bound is kept whole, without its line end."""
        assert clip(b"hello\r\n") == b"hello"

    def test_long_line_is_cut_with_a_marker(self) -> None:
        """A line over the bound keeps its start and says how much was cut."""
        assert clip(b"a" * 20 + b"\n", limit=8) == b"a" * 8 + b"... [12 bytes cut]"


class TestProcessLog:
    def test_lines_carry_their_ids(self, caplog: pytest.LogCaptureFixture) -> None:
        """Each line is logged at INFO with call, function, app, process and stream."""
        caplog.set_level(logging.INFO, logger="runnerpool.function")
        model = Call(id="c1", app_id="a1", fn_id="f1")
        sink = OutputSink(None, "a1", "f1", "", FunctionLog().process(model))
        sink.container_id = "fdk-1"
        sink.write(b"before any call\n", "stderr")
        sink.begin("c1", Sink())
        sink.write(b"hello\n", "stdout")
        sink.end()
        first, second = [r for r in caplog.records if r.name == "runnerpool.function"]
        assert first.getMessage() == "before any call"
        assert not hasattr(first, "call_id")
        assert (first.fn_id, first.stream, first.container_id) == ("f1", "stderr", "fdk-1")  # type: ignore[attr-defined]
        assert second.getMessage() == "hello"
        assert (second.call_id, second.app_id, second.stream) == ("c1", "a1", "stdout")  # type: ignore[attr-defined]

    def test_a_flood_is_cut_to_the_rate_and_counted(self, caplog: pytest.LogCaptureFixture) -> None:
        """Over its burst, a process's lines are not logged; a warning counts them, once."""
        caplog.set_level(logging.INFO, logger="runnerpool.function")
        clock = Clock()
        log = FunctionLog(rate=2.0, burst=5, clock=clock).process(Call(id="c", fn_id="f"))
        for n in range(8):
            log.line(b"line %d\n" % n, "stdout", "c")
        assert messages(caplog, logging.INFO) == [f"line {n}" for n in range(5)]
        assert messages(caplog, logging.WARNING) == []
        clock.now += 1.0
        for n in range(8, 12):
            log.line(b"line %d\n" % n, "stdout", "c")
        assert messages(caplog, logging.INFO)[5:] == ["line 8", "line 9"]
        [warning] = messages(caplog, logging.WARNING)
        assert warning.startswith("3 line(s) of function f not logged")
        clock.now += 1.0
        log.line(b"line 12\n", "stdout", "c")
        # Two more were not logged, but the last warning is too recent to log another.
        assert len(messages(caplog, logging.WARNING)) == 1

    def test_nothing_is_formatted_when_the_logger_is_off(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With runnerpool.function above INFO and no syslog URL, lines cost nothing."""
        caplog.set_level(logging.WARNING, logger="runnerpool.function")
        log = FunctionLog().process(Call(id="c", fn_id="f"))
        log.line(b"quiet\n", "stdout", "c")
        assert caplog.records == []


class TestCallLog:
    def test_a_calls_own_log_stops_at_fns_limit(self) -> None:
        """A call's own log keeps 1 MiB (Fn's FN_MAX_LOG_SIZE_BYTES default), then the marker."""
        sink, call = OutputSink(None, "a", "f", "p"), Sink()
        sink.begin("c", call)
        for _ in range(3):
            sink.write(b"z" * (512 * 1024) + b"\n", "stderr")
        marker = b"\n-----max log size 1048576 bytes exceeded, truncating log-----\n"
        assert call.data.endswith(marker)
        assert len(call.data) == 1024 * 1024 + len(marker)


async def take(stream: AsyncIterator[Sequence[ContainerLogs]]) -> list[str]:
    """The lines of the next batch of a collector."""
    async with asyncio.timeout(5):
        batch = await anext(stream)
    return [line.data.decode() for c in batch for request in c.requests for line in request.lines]


async def rest(stream: AsyncIterator[Sequence[ContainerLogs]]) -> list[list[str]]:
    """The lines of every batch until the stream ends."""
    batches = []
    async with asyncio.timeout(5):
        async for batch in stream:
            batches.append(
                [
                    line.data.decode()
                    for c in batch
                    for request in c.requests
                    for line in request.lines
                ]
            )
    return batches


class TestLogBook:
    async def test_collectors_each_read_every_line(self) -> None:
        """Two collectors both get the held lines, then new ones: neither takes from the other."""
        book = LogBook()
        entry = book.add("a", "f", "p", "c1")
        book.append(entry, LogLine(1, b"one\n"))
        first, second = book.stream({}), book.stream({})
        assert await take(first) == ["one\n"]
        assert await take(second) == ["one\n"]
        book.append(entry, LogLine(2, b"two\n"))
        assert await take(first) == ["two\n"]
        assert await take(second) == ["two\n"]

    async def test_without_follow_the_stream_ends(self) -> None:
        """follow=false: the lines held now, in batches, then the end of the stream."""
        book = LogBook()
        for request in ("c1", "c2"):
            entry = book.add("a", "f", "p", request)
            book.append(entry, LogLine(1, f"{request}\n".encode()))
        assert await rest(book.stream({"follow": "false"})) == [["c1\n", "c2\n"]]
        assert await rest(LogBook().stream({"follow": "false"})) == []

    async def test_batches_stay_under_a_mebibyte(self) -> None:
        """Three lines of 600 KiB come in three batches (grpclib refuses messages over 4 MiB)."""
        book = LogBook()
        entry = book.add("a", "f", "p", "c")
        for n in range(3):
            book.append(entry, LogLine(n, b"%d" % n * (600 * 1024)))
        batches = await rest(book.stream({"follow": "false"}))
        assert [[line[0] for line in batch] for batch in batches] == [["0"], ["1"], ["2"]]

    async def test_bytes_bound_forgets_the_oldest_calls(self) -> None:
        """Over max_bytes, the oldest calls' lines are forgotten; a collector skips them."""
        book = LogBook(max_bytes=10)
        for request in ("c1", "c2", "c3"):
            entry = book.add("a", "f", "p", request)
            book.append(entry, LogLine(1, b"12345\n"))
        assert await rest(book.stream({"follow": "false"})) == [["12345\n"]]
