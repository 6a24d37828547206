"""Misbehaving HTTP clients, on raw sockets, for the edge benchmark and the edge tests.

* :func:`header_flood`: connections that each send one request whose head grows without
  end (one header of ``header_bytes``), reading whatever the server answers meanwhile.
* :func:`hold_idle` (``python -m bench._clients hold PORT COUNT FIRST``): a process that
  opens ``COUNT`` connections that never send a byte, from source addresses 127.0.0.FIRST,
  127.0.0.FIRST+1, ... (2 000 connections each, so that no source address runs out of
  ephemeral ports), prints ``open N`` and holds them until its stdin closes. One process
  holds at most 10 000, within the usual open files limit.
* :func:`request`: one request on a fresh connection; the status and the seconds it took.

Every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import dataclasses
import select
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "FloodResult",
    "IdleHolders",
    "accept_queue",
    "header_flood",
    "hold_idle",
    "request",
    "wait_accepted",
]

#: The repository, where ``python -m bench._clients`` is found.
_ROOT = str(Path(__file__).resolve().parent.parent)

#: Connections per source address of :func:`hold_idle`.
PER_SOURCE = 2000
#: Connections one :func:`hold_idle` process holds at most.
PER_PROCESS = 10_000


@dataclasses.dataclass
class FloodResult:
    """What one flooding connection got.

    Attributes:
        status: The status of the answer, or ``None`` if none came.
        sent: Bytes of the request sent before the answer or the connection's end.
        error: The socket error that ended the connection, if any.
    """

    status: int | None
    sent: int
    error: str | None = None


def _status(data: bytes) -> int | None:
    if data.startswith(b"HTTP/1.") and len(data) >= 12:
        return int(data[9:12])
    return None


def flood_one(port: int, header_bytes: int, timeout: float = 30.0) -> FloodResult:
    """Send one request with a header of ``header_bytes`` to ``127.0.0.1:port``.

    Sends in pieces of 64 KiB, as an attacker does: on, whatever the server answers meanwhile
    (the answer is read and kept); stops once all is sent and the answer has come, or the
    connection ends, or after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    piece = b"a" * 65536
    head = b"POST /invoke/hello HTTP/1.1\r\nHost: lb\r\nContent-Length: 2\r\nX-Flood: "
    sent = 0
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setblocking(False)
        pending = head
        total = len(head) + header_bytes
        try:
            reading = True
            while time.monotonic() < deadline:
                if (not reading or b"\r\n\r\n" in received) and sent >= total:
                    return FloodResult(_status(received), sent)
                writable = [sock] if sent < total else []
                readable, writable, _ = select.select([sock] if reading else [], writable, [], 0.5)
                if readable:
                    data = sock.recv(65536)
                    reading = bool(data)  # the server half-closed: send on regardless
                    received += data
                if writable:
                    if not pending:
                        pending = piece[: min(len(piece), total - sent)]
                    count = sock.send(pending)
                    sent += count
                    pending = pending[count:]
            return FloodResult(_status(received), sent, "timed out")
        except OSError as exc:
            return FloodResult(_status(received), sent, type(exc).__name__)


def header_flood(
    port: int, connections: int, header_bytes: int, timeout: float = 60.0
) -> list[FloodResult]:
    """Flood ``127.0.0.1:port`` with ``connections`` concurrent requests of huge heads."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(connections) as pool:
        futures = [pool.submit(flood_one, port, header_bytes, timeout) for _ in range(connections)]
        return [future.result() for future in futures]


def request(port: int, data: bytes, timeout: float = 5.0) -> tuple[int | None, float]:
    """Send ``data`` on a fresh connection; return the answer's status and the seconds taken.

    The status is ``None`` when no answer came within ``timeout`` or the connection failed.
    """
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(data)
            received = b""
            while len(received) < 12:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return None, time.monotonic() - start
    return _status(received), time.monotonic() - start


def accept_queue(port: int) -> int:
    """Return the accept queue's length of the socket listening on 127.0.0.1:``port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
            return int(fields[4].partition(":")[2], 16)
    raise RuntimeError(f"nothing listens on {port}")


def wait_accepted(port: int, below: int = 1, within: float = 30.0) -> bool:
    """Wait until fewer than ``below`` connections wait to be accepted on ``port``.

    Returns:
        Whether they are, within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while accept_queue(port) >= below:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def hold_idle(port: int, count: int, first_source: int, batch: int = 250) -> list[socket.socket]:
    """Open ``count`` connections to ``127.0.0.1:port`` that send nothing; return them.

    Source addresses start at ``127.0.0.{first_source}``, :data:`PER_SOURCE` connections
    each. Connections are opened ``batch`` at a time, each batch once the previous one is
    established (or after 10 s), so that the server's accept queue does not overflow for
    long: a dropped SYN is retried by the kernel for minutes, and its connection would
    arrive long after.
    """
    sockets: list[socket.socket] = []
    for start in range(0, count, batch):
        poller = select.poll()
        for index in range(start, min(count, start + batch)):
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind((f"127.0.0.{first_source + index // PER_SOURCE}", 0))
            try:
                sock.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            poller.register(sock, select.POLLOUT)
        waiting = len(sockets) - start
        deadline = time.monotonic() + 10
        while waiting > 0 and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                waiting -= 1
    return sockets


class IdleHolders:
    """Processes of :func:`hold_idle` holding ``count`` idle connections between them.

    Args:
        port: The server's port on 127.0.0.1.
        count: Connections in all.
    """

    def __init__(self, port: int, count: int) -> None:
        import subprocess

        self.processes: list[subprocess.Popen[str]] = []
        source = 2
        for start in range(0, count, PER_PROCESS):
            share = min(PER_PROCESS, count - start)
            command = ["hold", str(port), str(share), str(source)]
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench._clients", *command],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=_ROOT,
                )
            )
            source += -(-share // PER_SOURCE)

    def wait_open(self) -> int:
        """Wait until every process has made its connections; return how many it made."""
        opened = 0
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.startswith("open "):
                opened += int(line.split()[1])
        return opened

    def close(self) -> None:
        """Close the connections: end every process (killed after 10 s)."""
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(10)
            except Exception:
                process.kill()
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def main(argv: Sequence[str]) -> None:
    """``hold PORT COUNT FIRST``: hold idle connections until stdin closes."""
    if len(argv) != 4 or argv[0] != "hold":
        sys.exit("usage: python -m bench._clients hold PORT COUNT FIRST_SOURCE")
    held = hold_idle(int(argv[1]), int(argv[2]), int(argv[3]))
    print(f"open {len(held)}", flush=True)
    sys.stdin.read()
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
