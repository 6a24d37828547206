"""The edge's parts on their own.

The connection table, the descriptor budget, the rate-limited log, the limits' validation,
and a body kept as read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap

import pytest

from runnerpool import BufferedCall
from runnerpool.lb._connections import Admission, ConnectionTable
from runnerpool.lb._fds import connection_budget
from runnerpool.lb._limits import EdgeLimits, reserve_for
from runnerpool.lb._ratelog import RateLimitedLog


class Connection:
    """A connection that records its eviction."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        """Record the eviction."""
        self.evicted = True


class TestConnectionTable:
    def test_closes_the_connection_idle_longest(self) -> None:
        """Past the cap, the least recently idle connection is closed, busy ones never."""
        table = ConnectionTable(3, reserve=1)
        a, b, c, d = (Connection(name) for name in "abcd")
        for connection in (a, b, c):
            assert table.admit(connection) is Admission.SERVED
        table.busy(a)
        table.busy(b)
        table.idle(b)  # b is idle again, more recently than c
        assert table.admit(d) is Admission.SERVED
        assert (a.evicted, b.evicted, c.evicted) == (False, False, True)
        assert table.open == 3
        assert table.evicted == 1

    def test_over_cap_then_refused_when_all_busy(self) -> None:
        """With every connection busy, new ones are over the cap up to the reserve, then refused."""
        table = ConnectionTable(2, reserve=1)
        first, second, third, fourth = (Connection(name) for name in "1234")
        for connection in (first, second):
            table.admit(connection)
            table.busy(connection)
        assert table.admit(third) is Admission.OVER_CAP
        assert table.over_cap
        table.busy(third)
        assert table.admit(fourth) is Admission.REFUSED
        assert table.open == 3
        table.release(first)
        assert not table.over_cap

    def test_idle_first_is_closed_first(self) -> None:
        """A connection marked idle ``first`` (a refused one, lingering) goes before older ones."""
        table = ConnectionTable(2, reserve=1)
        old, refused, new = Connection("old"), Connection("refused"), Connection("new")
        table.admit(old)
        table.admit(refused)
        table.idle(refused, first=True)
        table.admit(new)
        assert refused.evicted
        assert not old.evicted

    def test_released_connection_is_not_marked_idle(self) -> None:
        """A connection released is no longer counted, even if marked idle afterwards."""
        table = ConnectionTable(2, reserve=1)
        gone = Connection("gone")
        table.admit(gone)
        table.release(gone)
        table.idle(gone)
        assert table.open == 0


class TestBudget:
    def test_requested_cap_kept_when_it_fits(self) -> None:
        """A cap whose reserve and headroom fit the open files limit is kept."""
        assert connection_budget(10_000, 20_000, headroom=1280) == 10_000

    @pytest.mark.parametrize("open_files", [1024, 4096, 10_300])
    def test_cap_lowered_to_fit(self, open_files: int) -> None:
        """Otherwise the cap and its reserve are lowered to fit within the limit."""
        cap = connection_budget(10_000, open_files, headroom=256)
        assert cap + reserve_for(cap) <= open_files - 256
        assert cap + reserve_for(cap) > open_files - 256 - 2 * reserve_for(cap)

    def test_at_least_one(self) -> None:
        """However low the limit, one connection is allowed."""
        assert connection_budget(10_000, 100, headroom=256) == 1


class TestRateLimitedLog:
    async def test_first_logged_rest_counted(self, caplog: pytest.LogCaptureFixture) -> None:
        """The first event of a kind is logged, the next ones in the interval are one line."""
        log = RateLimitedLog(logging.getLogger("runnerpool.test"), interval=0.2)
        with caplog.at_level(logging.WARNING, "runnerpool.test"):
            for index in range(1000):
                log.event("refused", "Refused %d", index)
            log.event("other", "Other")
            await asyncio.sleep(0.4)
            log.event("refused", "Refused again")
            log.close()
        assert [record.getMessage() for record in caplog.records] == [
            "Refused 0",
            "Other",
            "999 more: refused (in the last 0.2 s; one line per 0.2 s)",
            "Refused again",
        ]


class TestEdgeLimits:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_header_size", 100),
            ("header_timeout", 0),
            ("body_timeout", -1),
            ("keepalive_timeout", 0),
            ("max_connections", 0),
        ],
    )
    def test_invalid_values_name_the_field(self, field: str, value: float) -> None:
        """A limit out of range raises ValueError naming it."""
        with pytest.raises(ValueError, match=field):
            EdgeLimits(**{field: value})  # type: ignore[arg-type]

    def test_defaults(self) -> None:
        """The defaults: 64 KiB heads, 10 s heads, 60 s bodies, 5 s keep-alive, 10 000 conns."""
        limits = EdgeLimits()
        assert (
            limits.max_header_size,
            limits.header_timeout,
            limits.body_timeout,
            limits.keepalive_timeout,
            limits.max_connections,
            limits.connection_reserve,
        ) == (65536, 10.0, 60.0, 5.0, 10_000, 100)


class TestBodyHeldOnce:
    async def test_bytearray_body_replayed_in_bytes_pieces(self) -> None:
        """A bytearray body is replayed whole, as bytes pieces of at most 1 MiB."""
        body = bytearray(range(256)) * (5 * 4096 + 1)  # 5 MiB and 256 bytes
        call = BufferedCall(body=body)
        for _ in range(2):  # every attempt reads it again from the start
            pieces = [piece async for piece in call.request_body()]
            assert all(type(piece) is bytes and len(piece) <= 1024 * 1024 for piece in pieces)
            assert b"".join(pieces) == body


#: A server whose descriptors run out: every accept() fails with EMFILE for 3.5 s.
EMFILE_SERVER = textwrap.dedent(
    """
    import asyncio, logging, os, resource, sys
    from runnerpool.lb._fds import handle_accept_errors
    from runnerpool.lb._ratelog import RateLimitedLog

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    async def main():
        loop = asyncio.get_running_loop()
        if sys.argv[1] == "limited":
            log = RateLimitedLog(logging.getLogger("runnerpool.lb"), interval=10)
            handle_accept_errors(loop, log)
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 1, hard))
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(3.5)

    asyncio.run(main())
    """
)


class TestAcceptErrors:
    @pytest.mark.parametrize("mode", ["limited", "asyncio"])
    def test_accept_errors_logged_at_a_bounded_rate(self, mode: str) -> None:
        """Failed accept()s (EMFILE) log one line, where asyncio alone logs a traceback each."""
        server = subprocess.Popen(
            [sys.executable, "-c", EMFILE_SERVER, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
            _, stderr = server.communicate(timeout=30)
        finally:
            server.kill()
            server.wait(10)
        for client in clients:
            client.close()
        if mode == "limited":
            assert stderr.count("\n") == 1, stderr[:1000]
            assert "Cannot accept a connection: socket.accept() out of system resource" in stderr
            assert "Too many open files" in stderr
        else:  # what the load balancer logged before: the test's check that EMFILE happened
            assert stderr.count("Traceback") > 10
