"""Edge benchmark: the load balancer's memory under a header flood and under idle connections.

Starts one ``runnerpool runner`` (the in-process examples) and one ``runnerpool lb`` with its
default edge limits but ``--header-timeout 300`` (so that idle connections are not closed
for their silence but only to make room: the cap is full, the worst case for memory), both
with ``--port 0``, then measures the LB process (``VmRSS`` and the peak ``VmHWM`` of
``/proc/<pid>/status``, in MB):

* ``idle``: the baseline, after one call, with no client connected;
* ``header flood``: ``--flood`` connections at once, each sending one request whose single
  header grows to ``--header-mb`` MB, 64 KiB at a time, on after the answer as an attacker
  would (until the LB closes the connection): the answers by status, the megabytes the LB
  took in, and its peak memory during the flood (reset before it through
  ``/proc/<pid>/clear_refs`` where allowed);
* ``idle connections``: ``--connections`` connections that send nothing, held by helper
  processes (``bench._clients``) from 127.0.0.2 and up, opened 500 at a time as fast as the
  LB accepts them (never overflowing its accept queue); once all are open: the LB's memory,
  its open descriptors, the latency of ``GET /health`` on a new connection (median and
  worst of 5) and the status of a call.

Each row gives the memory's ratio to the idle baseline. Under the table: the LB's log size
(it must stay small). Target (issue 11): LB memory at most 200 MB under the header flood.

A second table gives the cost of the edge's protocol per request: a trivial Starlette app
(``GET /health``) served by uvicorn in a process of its own, with uvicorn's own httptools
protocol (the baseline) and with the LB's ``EdgeProtocol``, each driven by ``--requests``
sequential keep-alive requests from this process, interleaved, best of 3: the server's CPU
per request (``/proc/<pid>/stat``) and its ratio to the baseline.

Run: ``python -m bench.edge`` (about 40 s with the defaults; ``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import runnerpool
from bench._clients import IdleHolders, header_flood, request, wait_accepted

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(runnerpool.__file__).resolve().parent / "examples.toml"
HEALTH = b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n"
HELLO = b"POST /invoke/hello HTTP/1.1\r\nHost: lb\r\nContent-Length: 2\r\n\r\n{}"
MB = 1024 * 1024


def status_mb(pid: int, field: str) -> float:
    """Return ``field`` (``VmRSS``, ``VmHWM``) of ``/proc/PID/status`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> bool:
    """Reset the process's peak memory to its current memory; return whether it could."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def open_files(pid: int) -> int:
    """Return the process's open file descriptors."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def started(argv: Sequence[str], ready: str, stderr: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a ``runnerpool`` process; return it and what follows ``ready`` on its stdout."""
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "runnerpool", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(ready):
        process.kill()
        process.wait(10)
        raise RuntimeError(f"{argv[:3]} did not start: {line!r}")
    return process, line.removeprefix(ready).strip()


def stop(process: subprocess.Popen[str]) -> None:
    """Stop a process (SIGTERM, then SIGKILL after 10 s) and close its pipe."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def run(flood: int, header_mb: int, connections: int) -> list[str]:
    """Run the three measurements; return the table's lines."""
    with tempfile.TemporaryDirectory() as directory:
        logs = Path(directory)
        runner, runner_address = started(
            ["--log-level", "warning", "runner", "--port", "0"],
            "runner listening on ",
            logs / "runner.log",
        )
        try:
            # Heads may take minutes: idle connections stay until closed to make room.
            options = ["--port", "0", "--header-timeout", "300", "--config", str(CONFIG)]
            options += ["--runner-addresses"]
            lb, url = started(
                ["--log-level", "info", "lb", *options, runner_address],
                "load balancer listening on ",
                logs / "lb.log",
            )
            try:
                return measure(
                    lb.pid,
                    int(url.rpartition(":")[2]),
                    logs / "lb.log",
                    flood,
                    header_mb,
                    connections,
                )
            finally:
                stop(lb)
        finally:
            stop(runner)


def measure(
    pid: int, port: int, log: Path, flood: int, header_mb: int, connections: int
) -> list[str]:
    """Measure the LB at ``pid``; return the table's lines."""
    assert request(port, HELLO)[0] == 200
    idle = status_mb(pid, "VmRSS")
    rows = [("idle", idle, status_mb(pid, "VmHWM"), "no connection")]

    resettable = reset_peak(pid)
    start = time.monotonic()
    results = header_flood(port, flood, header_mb * MB)
    took = time.monotonic() - start
    answers = Counter(str(result.status) for result in results)
    peak = status_mb(pid, "VmHWM") if resettable else float("nan")
    rows.append(
        (
            f"header flood {flood} x {header_mb} MB",
            status_mb(pid, "VmRSS"),
            peak,
            f"answers {dict(sorted(answers.items()))}, "
            f"{sum(result.sent for result in results) / MB:.0f} MB sent in {took:.1f} s",
        )
    )

    reset_peak(pid)
    holders = IdleHolders(port, connections)
    try:
        opened = holders.wait_open()
        wait_accepted(port, within=120)
        time.sleep(2)  # the last evictions' callbacks
        health = [request(port, HEALTH, timeout=10) for _ in range(5)]
        call = request(port, HELLO, timeout=10)
        rows.append(
            (
                f"{opened} idle connections",
                status_mb(pid, "VmRSS"),
                status_mb(pid, "VmHWM") if resettable else float("nan"),
                f"{open_files(pid)} fds; /health "
                f"{[status for status, _ in health].count(200)}/5 ok, median "
                f"{statistics.median(seconds for _, seconds in health) * 1000:.0f} ms, "
                f"worst {max(seconds for _, seconds in health) * 1000:.0f} ms; "
                f"call {call[0]}",
            )
        )
    finally:
        holders.close()

    lines = [
        f"{'scenario':<28} {'LB RSS MB':>9} {'peak MB':>8} {'peak/idle':>9}  detail",
        "-" * 100,
    ]
    lines += [
        f"{name:<28} {rss:>9.0f} {peak:>8.0f} {peak / idle:>9.2f}  {detail}"
        for name, rss, peak, detail in rows
    ]
    lines.append(f"LB log: {log.stat().st_size} bytes (info level)")
    if not resettable:
        lines.append("(peaks not reset between rows: /proc/<pid>/clear_refs not writable)")
    return lines


def serve(protocol: str) -> None:
    """Serve a trivial app on a free port with ``protocol`` (``stock`` or ``edge``); print it."""
    import asyncio

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from runnerpool._sockets import listening_socket
    from runnerpool.lb._connections import ConnectionTable
    from runnerpool.lb._limits import EdgeLimits
    from runnerpool.lb._protocol import EdgeConfig
    from runnerpool.lb._ratelog import RateLimitedLog

    async def health(request: object) -> Response:
        return Response('{"status":"ok"}\n', media_type="application/json")

    app = Starlette(routes=[Route("/health", health)])
    options: dict[str, object] = {"port": 0, "log_config": None, "lifespan": "off"}
    config = (
        uvicorn.Config(app, http="httptools", **options)  # type: ignore[arg-type]
        if protocol == "stock"
        else EdgeConfig(
            app,
            limits=EdgeLimits(),
            connections=ConnectionTable(100, 16),
            log=RateLimitedLog(logging.getLogger("bench")),
            **options,
        )
    )
    server = uvicorn.Server(config)
    sock = listening_socket("127.0.0.1", 0)  # TCP_NODELAY on its connections, as the LB's
    print(f"serving on {sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


def process_cpu(pid: int) -> float:
    """Return the process's CPU seconds (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def protocol_cost(requests: int) -> list[str]:
    """Measure the server CPU per keep-alive request, stock protocol against the edge's."""
    servers = {}
    for name in ("stock", "edge"):
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.edge", "--serve", name],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        servers[name] = (process, int(process.stdout.readline().rpartition(" ")[2]))
    best: dict[str, float] = {}
    try:
        for _ in range(3):
            for name, (process, port) in servers.items():
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    before = process_cpu(process.pid)
                    for _ in range(requests):
                        sock.sendall(HEALTH)
                        received = b""
                        while not received.endswith(b'{"status":"ok"}\n'):
                            received += sock.recv(4096)
                    used = process_cpu(process.pid) - before
                best[name] = min(best.get(name, float("inf")), used / requests * 1e6)
    finally:
        for process, _ in servers.values():
            stop(process)
    return [
        f"{'protocol':<28} {'µs CPU/request':>14} {'ratio':>6}",
        "-" * 52,
        f"{'uvicorn httptools (stock)':<28} {best['stock']:>14.0f} {1:>6.2f}",
        f"{'EdgeProtocol':<28} {best['edge']:>14.0f} {best['edge'] / best['stock']:>6.2f}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=10, help="flooding connections (10)")
    parser.add_argument("--header-mb", type=int, default=30, help="MB of header each (30)")
    parser.add_argument("--connections", type=int, default=20_000, help="idle connections (20 000)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per protocol (3000)")
    parser.add_argument("--serve", choices=["stock", "edge"], help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        serve(options.serve)
        return
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("runnerpool lb with its defaults but --header-timeout 300")
    for line in run(options.flood, options.header_mb, options.connections):
        print(line)
    print()
    for line in protocol_cost(options.requests):
        print(line)


if __name__ == "__main__":
    main()
