"""The load balancer's HTTP edge against misbehaving clients: real processes, raw sockets.

Header floods, slow heads and bodies, idle keep-alive connections, connection floods,
oversized bodies, and a drain that outlives its timeout.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from bench._clients import IdleHolders, header_flood, request, wait_accepted

from tests.lb.conftest import MB, Process, Processes, closed_port, eventually, wait_active

HEALTH = b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n"
HELLO = b"POST /invoke/hello HTTP/1.1\r\nHost: lb\r\nContent-Length: 2\r\n\r\n{}"


def port_of(lb: Process) -> int:
    """Return the load balancer's port."""
    return int(lb.address.rpartition(":")[2])


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """Return a field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``: the peak) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read one answer; return what came.

    Reads until its Content-Length is complete, the connection ends, or ``timeout`` passes.
    """
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            head, separator, body = received.partition(b"\r\n\r\n")
            if separator:
                for line in head.lower().split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name == b"content-length" and len(body) >= int(value):
                        return received
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def connect(lb: Process) -> socket.socket:
    """Open a connection to the load balancer."""
    return socket.create_connection(("127.0.0.1", port_of(lb)), timeout=10)


@pytest.fixture
def runner(processes: Processes) -> Process:
    """One runner (the in-process examples) for the test's load balancer."""
    return processes.runner()


class TestHeaderSize:
    @pytest.mark.timeout(120)
    def test_flood_gets_431_and_memory_stays_bounded(self, processes: Processes) -> None:
        """Ten requests with 30 MB of headers each get 431 and the LB's peak memory stays low."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"])
        before = memory_mb(lb.popen.pid)
        results = header_flood(port_of(lb), 10, 30 * MB)
        assert [result.status for result in results] == [431] * 10, results
        # Without a limit the ten heads were held whole: 300 MB and more.
        assert memory_mb(lb.popen.pid, "VmHWM") - before < 64
        assert request(port_of(lb), HEALTH)[0] == 200
        assert len(lb.stderr()) < 4096

    def test_head_over_limit_in_one_piece_gets_431(self, processes: Processes) -> None:
        """A complete head of 70 KB (many headers) sent at once gets 431; 60 KB is served."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"])
        for kilobytes, status in ((70, 431), (60, 200)):
            headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(kilobytes))
            with connect(lb) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: lb\r\n" + headers + b"\r\n")
                answer = read_answer(sock, timeout=5)
            assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
        assert b'{"message":"Request header fields too large (over 65536 bytes)"}' in (
            request_raw(lb, b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        )

    def test_configured_limit(self, processes: Processes) -> None:
        """With --max-header-size 2048, a 3 KB header gets 431 and a 1 KB one is served."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--max-header-size", "2048")
        too_big = request_raw(lb, b"GET /health HTTP/1.1\r\nX-A: " + b"a" * 3000 + b"\r\n\r\n")
        assert too_big.startswith(b"HTTP/1.1 431 ")
        assert b"connection: close" in too_big
        fits = request_raw(lb, b"GET /health HTTP/1.1\r\nX-A: " + b"a" * 1000 + b"\r\n\r\n")
        assert fits.startswith(b"HTTP/1.1 200 ")


def request_raw(lb: Process, data: bytes) -> bytes:
    """Send ``data`` on a new connection; return the answer (read until close or 3 s)."""
    with connect(lb) as sock:
        sock.sendall(data)
        return read_answer(sock, timeout=3)


class TestTimeouts:
    def test_slow_head_gets_408_and_is_closed(self, processes: Processes) -> None:
        """A head sent a byte every 0.2 s gets 408 after --header-timeout; the connection ends."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--header-timeout", "1")
        with connect(lb) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            sock.settimeout(0.2)
            received = b""
            for _ in range(100):  # 20 s at most
                try:
                    sock.send(b"X")
                    received += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if b"\r\n\r\n" in received:
                    break
            received += read_answer(sock, timeout=5)
        assert received.startswith(b"HTTP/1.1 408 "), received[:100]
        assert b'"Request head not received within 1 s"' in received

    def test_silent_connection_is_closed(self, processes: Processes) -> None:
        """A connection that sends nothing is closed after --header-timeout, without an answer."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--header-timeout", "0.5")
        with connect(lb) as sock:
            assert read_answer(sock, timeout=10) == b""

    def test_slow_body_gets_408_and_is_closed(self, processes: Processes) -> None:
        """A body that stops coming gets 408 after --body-timeout; the LB then serves others."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--body-timeout", "1")
        with connect(lb) as sock:
            sock.sendall(b"POST /invoke/echo HTTP/1.1\r\nHost: lb\r\nContent-Length: 1000\r\n\r\n")
            sock.sendall(b"x" * 10)
            answer = read_answer(sock, timeout=10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert b'"Request body not received within 1 s"' in answer
        assert request(port_of(lb), HEALTH)[0] == 200

    def test_idle_keepalive_connection_is_closed(self, processes: Processes) -> None:
        """After a response, a keep-alive connection idle for --keepalive-timeout is closed."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--keepalive-timeout", "0.5")
        with connect(lb) as sock:
            sock.sendall(HEALTH)
            assert read_answer(sock, timeout=10).startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            assert read_answer(sock, timeout=10) == b""  # closed by the LB
            assert time.monotonic() - started < 9


class TestConnections:
    async def test_past_the_cap_503_but_health_answers(
        self, processes: Processes, runner: Process
    ) -> None:
        """With every connection of --max-connections busy, a call gets 503 and /health 200."""
        lb = processes.lb([runner.address], "--max-connections", "2")
        slow = b"POST /invoke/slow HTTP/1.1\r\nHost: lb\r\nContent-Length: 1\r\n\r\n5"
        busy = [connect(lb) for _ in range(2)]
        try:
            for sock in busy:
                sock.sendall(slow)
            await wait_active([runner.address], 2)  # a busy connection is never closed
            refused = request_raw(lb, HELLO)
            assert refused.startswith(b"HTTP/1.1 503 "), refused[:100]
            assert b"retry-after: 15" in refused
            assert b'{"message":"Server too busy: too many connections"}' in refused
            assert request_raw(lb, HEALTH).startswith(b"HTTP/1.1 200 ")
            for sock in busy:
                assert read_answer(sock, timeout=15).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in busy:
                sock.close()
        assert request_raw(lb, HELLO).startswith(b"HTTP/1.1 200 ")

    def test_idle_connection_closed_to_make_room(self, processes: Processes) -> None:
        """Past --max-connections, the connection idle longest is closed; the new one is served."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--max-connections", "2")
        oldest, other = connect(lb), connect(lb)
        try:
            time.sleep(0.5)
            assert request_raw(lb, HEALTH).startswith(b"HTTP/1.1 200 ")
            assert read_answer(oldest, timeout=5) == b""
            other.sendall(HEALTH)
            other.settimeout(5)
            assert other.recv(100).startswith(b"HTTP/1.1 200 ")
        finally:
            oldest.close()
            other.close()

    @pytest.mark.timeout(240)
    def test_20000_idle_connections(self, processes: Processes, runner: Process) -> None:
        """Holding 20 000 idle connections, /health answers, calls are served, the log is small."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 12_000:
            pytest.skip(f"the open files hard limit ({hard}) cannot hold the test's connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        try:
            # Heads may take minutes: the connections stay until closed to make room.
            lb = processes.lb([runner.address], "--header-timeout", "300", log_level="info")
            port = port_of(lb)
            holders = IdleHolders(port, 20_000)
            try:
                assert holders.wait_open() == 20_000
                assert wait_accepted(port, within=60)
                settle(lb.popen.pid)
                status, seconds = request(port, HEALTH, timeout=10)
                assert status == 200
                assert seconds < 1.0
                assert request(port, HELLO, timeout=10)[0] in (200, 503)
                open_files = len(os.listdir(f"/proc/{lb.popen.pid}/fd"))
                assert open_files <= 10_000 + 100 + 256
            finally:
                holders.close()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert len(lb.stderr()) < 8192, lb.stderr()[-2000:]


def settle(pid: int, within: float = 30.0) -> None:
    """Wait until the process's count of open descriptors stops changing (for 0.5 s)."""
    deadline = time.monotonic() + within
    count = -1
    while time.monotonic() < deadline:
        now = len(os.listdir(f"/proc/{pid}/fd"))
        if now == count:
            return
        count = now
        time.sleep(0.5)


class TestBody:
    async def test_default_limit_413(self, processes: Processes, runner: Process) -> None:
        """Without --max-request-size, a body over 6 MiB gets 413, declared or chunked."""
        lb = processes.lb([runner.address])
        big = b"x" * (6 * MB + 1)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), MB):
                yield big[start : start + MB]

        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            declared = await client.post("/invoke/echo", content=big)
            assert declared.status_code == 413
            assert declared.json() == {"message": "Request content too large"}
            streamed = await client.post("/invoke/echo", content=chunks())
            assert streamed.status_code == 413
            fits = await client.post("/invoke/echo", content=big[: 6 * MB])
            assert fits.status_code == 200
            assert len(fits.content) == 6 * MB

    @pytest.mark.timeout(120)
    async def test_body_held_once(self, processes: Processes) -> None:
        """With no body limit, the LB's peak memory grows by one 200 MB body, not two."""
        lb = processes.lb([f"127.0.0.1:{closed_port()}"], "--max-request-size", "0")
        before = memory_mb(lb.popen.pid, "VmHWM")
        async with httpx.AsyncClient(base_url=lb.address, timeout=60) as client:
            response = await client.post("/invoke/echo", content=bytes(200 * MB))
        assert response.status_code == 503  # read whole, then no runner took it
        grown = memory_mb(lb.popen.pid, "VmHWM") - before
        assert 200 <= grown < 300  # held twice, it grew by 400 MB


class TestDrainTimeout:
    @pytest.mark.timeout(60)
    async def test_stuck_call_cancelled_and_lb_exits(
        self, processes: Processes, runner: Process
    ) -> None:
        """On SIGTERM a call longer than --drain-timeout is cancelled (500), and the LB exits 0."""
        lb = processes.lb([runner.address], "--drain-timeout", "1")
        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            call = asyncio.create_task(client.post("/invoke/slow", content=b"30"))
            await wait_active([runner.address], 1)
            started = time.monotonic()
            lb.signal(signal.SIGTERM)
            response = await call
            assert response.status_code == 500
            assert response.json() == {
                "message": "Call cancelled: the load balancer stopped before it ended"
            }
        assert await lb.wait(20) == 0
        assert time.monotonic() - started < 20
        await wait_active([runner.address], 0)

        async def logged() -> bool:
            return "Drain timeout (1 s): cancelling 1 call(s) still in flight" in lb.stderr()

        await eventually(logged, what="the drain timeout logged")
