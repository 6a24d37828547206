"""Shipping function lines to syslog: Fn's format, real servers on loopback, the bounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runnerpool._syslog import SyslogShipper, fn_syslog_line
from tests.fdk.conftest import until
from tests.lb.conftest import closed_port


class StreamServer:
    """A stream syslog server on loopback (TCP or a unix socket): what it got, per connection."""

    def __init__(self) -> None:
        self.connections: list[bytearray] = []
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def take(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = bytearray()
        self.connections.append(received)
        self._writers.append(writer)
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                received += data

    @property
    def data(self) -> bytes:
        return b"".join(self.connections)

    async def drop_connections(self) -> None:
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def aclose(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.drop_connections()
        await self.server.wait_closed()


@pytest.fixture
async def tcp_server() -> AsyncIterator[tuple[StreamServer, str]]:
    """A TCP syslog server on 127.0.0.1 and its URL."""
    server = StreamServer()
    server.server = await asyncio.start_server(server.take, "127.0.0.1", 0)
    port = server.server.sockets[0].getsockname()[1]
    yield server, f"tcp://127.0.0.1:{port}"
    await server.aclose()


@pytest.fixture
async def shipper() -> AsyncIterator[SyslogShipper]:
    """A shipper, closed after the test."""
    shipper = SyslogShipper(connect_timeout=2.0)
    yield shipper
    await shipper.aclose()


class TestFormat:
    def test_fn_format(self) -> None:
        """Port of Fn's TestSyslogFormat (api/agent/syslog_test.go): stderr is <11>."""
        line = fn_syslog_line(
            b"yo",
            source="stderr",
            call_id="12345",
            fn_name="yo/dawg",
            app_name="myapp",
            now=datetime(1982, 6, 25, 12, 0, 0, tzinfo=UTC),
        )
        assert line == (
            b"<11>2 1982-06-25T12:00:00Z fn - - - - "
            b"call_id=12345 func_name=yo/dawg app_name=myapp yo\n"
        )

    def test_stdout_is_info(self) -> None:
        """A stdout line has Fn's priority user.info, 14."""
        line = fn_syslog_line(b"hi", source="stdout", call_id="c", fn_name="f", app_name="a")
        assert line.startswith(b"<14>2 ")
        assert line.endswith(b" fn - - - - call_id=c func_name=f app_name=a hi\n")


class TestShipping:
    async def test_tcp_lines_share_one_connection(
        self, shipper: SyslogShipper, tcp_server: tuple[StreamServer, str]
    ) -> None:
        """Lines sent to one TCP URL arrive in order over a single reused connection."""
        server, url = tcp_server
        for n in range(50):
            shipper.send(url, b"line %d\n" % n)
        await until(lambda: server.data.count(b"\n") == 50)
        shipper.send(url, b"later\n")
        await until(lambda: server.data.endswith(b"later\n"))
        assert len(server.connections) == 1
        assert server.data == b"".join(b"line %d\n" % n for n in range(50)) + b"later\n"

    async def test_reconnects_after_the_server_closes(
        self, shipper: SyslogShipper, tcp_server: tuple[StreamServer, str]
    ) -> None:
        """When the server closes the connection, the next line opens a new one."""
        server, url = tcp_server
        shipper.send(url, b"first\n")
        await until(lambda: server.data == b"first\n")
        await server.drop_connections()
        await asyncio.sleep(0.1)
        shipper.send(url, b"second\n")
        await until(lambda: server.data.endswith(b"second\n"))
        assert server.connections == [bytearray(b"first\n"), bytearray(b"second\n")]

    async def test_an_idle_connection_is_closed_and_reopened(
        self, tcp_server: tuple[StreamServer, str]
    ) -> None:
        """A connection idle for idle_close is closed; a later line opens a new one."""
        server, url = tcp_server
        shipper = SyslogShipper(idle_close=0.1)
        try:
            shipper.send(url, b"one\n")
            await until(lambda: url not in shipper._destinations)
            shipper.send(url, b"two\n")
            await until(lambda: server.data == b"one\ntwo\n")
            assert len(server.connections) == 2
        finally:
            await shipper.aclose()

    async def test_udp_one_datagram_per_line(self, shipper: SyslogShipper) -> None:
        """Each line is one UDP datagram."""
        received: list[bytes] = []

        class Datagrams(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                received.append(data)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Datagrams, local_addr=("127.0.0.1", 0)
        )
        try:
            port = transport.get_extra_info("sockname")[1]
            for n in range(3):
                shipper.send(f"udp://127.0.0.1:{port}", b"dgram %d\n" % n)
            await until(lambda: len(received) == 3)
            assert received == [b"dgram 0\n", b"dgram 1\n", b"dgram 2\n"]
        finally:
            transport.close()

    async def test_unix_stream(self, shipper: SyslogShipper, tmp_path: Path) -> None:
        """A unix:// URL sends lines over a unix stream socket."""
        server = StreamServer()
        path = tmp_path / "syslog.sock"
        server.server = await asyncio.start_unix_server(server.take, str(path))
        try:
            shipper.send(f"unix://{path}", b"over unix\n")
            await until(lambda: server.data == b"over unix\n")
        finally:
            await server.aclose()

    async def test_close_sends_what_is_queued(self, tcp_server: tuple[StreamServer, str]) -> None:
        """Closing the shipper first sends the lines still queued."""
        server, url = tcp_server
        shipper = SyslogShipper()
        for n in range(100):
            shipper.send(url, b"queued %d\n" % n)
        await shipper.aclose()
        await until(lambda: server.data.count(b"\n") == 100)


class TestBounds:
    async def test_dead_server_drops_are_counted_and_logged_at_a_bounded_rate(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Lines for a server that refuses connections are dropped, counted, and logged once.

        Sending never waits; a second burst within the notice interval is not logged until
        the shipper closes, which logs what it had not told yet.
        """
        caplog.set_level(logging.WARNING, logger="runnerpool._syslog")
        shipper = SyslogShipper(notice_every=3600)
        url = f"tcp://127.0.0.1:{closed_port()}"
        try:
            for n in range(10):
                shipper.send(url, b"lost %d\n" % n)
            await until(lambda: shipper.dropped == 10)
            for n in range(5):
                shipper.send(url, b"lost again %d\n" % n)
            await until(lambda: shipper.dropped == 15)
            [notice] = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        finally:
            await shipper.aclose()
        assert "10 line(s) dropped (cannot connect" in notice
        notices = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert notices[1:] == [notice.replace("10 line(s)", "5 line(s)")]

    async def test_a_server_that_does_not_read_holds_at_most_the_queue_bound(self) -> None:
        """A server that never reads: the queue stays within its bound; the rest is dropped."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        shipper = SyslogShipper(max_queued_bytes=64 * 1024)
        url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        line = b"x" * 1023 + b"\n"
        try:
            most = 0
            for _ in range(40):
                for _ in range(1000):
                    shipper.send(url, line)
                destination = shipper._destinations[url]
                most = max(most, destination.queued_bytes)
                await asyncio.sleep(0.01)
            assert most <= 64 * 1024
            assert shipper.dropped > 0
        finally:
            await shipper.aclose(flush_timeout=0.1)
            listener.close()

    async def test_unsupported_url_is_logged_once(
        self, shipper: SyslogShipper, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A URL of another scheme is refused with one warning; sending to it does nothing."""
        caplog.set_level(logging.WARNING, logger="runnerpool._syslog")
        shipper.send("http://logs.example.com:514", b"nope\n")
        shipper.send("http://logs.example.com:514", b"nope\n")
        assert [r.getMessage() for r in caplog.records] == [
            "syslog http://logs.example.com:514: not used: unsupported syslog scheme 'http'"
        ]
