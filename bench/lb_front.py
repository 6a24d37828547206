"""The LB's HTTP front end alone: CPU µs per call of its ASGI application, no sockets, no runner.

The application ``runnerpool lb`` serves (``create_app`` behind the access log middleware,
its log lines dropped) gets ``POST /invoke/echo`` with a 5-byte body straight as ASGI messages,
``--concurrency`` calls at a time; the placement goes to a ``FakeRunnerPool`` whose runner
answers ``hello`` at once. What is left is the front end's own work: routing, the request's
scope and headers, the call's model, the agent and placer bookkeeping, the answer. Every
answer is checked (200, ``hello``, a call id). CPU is ``time.process_time()`` of the process.

``--compare-src DIR`` measures another checkout too (its ``src`` first on ``PYTHONPATH``, in a
child process), interleaved with this one in alternating order, and prints the ratio: how
issue 16's plain ASGI handler was measured against the Starlette route it replaced.

Run: ``python -m bench.lb_front [--compare-src /path/to/other/src]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = b"hello"


async def _measure(calls: int, concurrency: int) -> float:
    """Serve ``calls`` calls through the front end; return the CPU µs per call."""
    import runnerpool
    from runnerpool import metrics
    from runnerpool.lb._access_log import AccessLog
    from runnerpool.lb._agent import LBAgent
    from runnerpool.lb._app import create_app
    from runnerpool.lb._registry import Registry
    from runnerpool.placers import create_placer
    from runnerpool.testing import FakeRunner, FakeRunnerPool, succeed

    logging.getLogger("runnerpool.access").disabled = True
    buckets = (1, 10, 50, 100, 250, 500, 1000, 10000, 60000, 120000)
    metrics.register_placer_views([], buckets)
    metrics.register_lb_agent_views([], buckets)
    config = Path(runnerpool.__file__).parent / "examples.toml"
    pool = FakeRunnerPool([FakeRunner("127.0.0.1:1", then=succeed(BODY))])
    agent = LBAgent(create_placer("ch", None), pool)
    app = AccessLog(create_app(agent, Registry.load(config)))
    scope_headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"5"),
    ]
    never = asyncio.Event()

    async def one() -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/invoke/echo",
            "raw_path": b"/invoke/echo",
            "query_string": b"",
            "root_path": "",
            "headers": scope_headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await never.wait()  # the client stays: no disconnect
            return {"type": "http.disconnect"}

        messages: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)  # type: ignore[arg-type]
        start, body = messages
        names = [name for name, _ in start["headers"]]
        if start["status"] != 200 or body["body"] != BODY or b"fn-call-id" not in names:
            raise RuntimeError(f"unexpected answer: {messages!r}")

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))  # warm
    cpu = time.process_time()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return (time.process_time() - cpu) / (calls // concurrency * concurrency) * 1e6


def _child(src: str | None, calls: int, concurrency: int) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, str(ROOT)])
    argv = [sys.executable, "-m", "bench.lb_front", "--child"]
    argv += ["--calls", str(calls), "--concurrency", str(concurrency)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"front-end child failed: {done.stderr}")
    return float(json.loads(done.stdout)["us_per_call"])


def main(argv: Sequence[str] | None = None) -> None:
    """Measure this checkout's front end (and another's, interleaved); print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="calls per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; median")
    parser.add_argument("--compare-src", metavar="DIR", help="another checkout's src directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = asyncio.run(_measure(args.calls, args.concurrency[0]))
        print(json.dumps({"us_per_call": result}))
        return
    sources: dict[str, str | None] = {"this checkout": None}
    if args.compare_src:
        sources["--compare-src"] = args.compare_src
    results: dict[tuple[str, int], list[float]] = {}
    for repeat in range(args.repeats):
        for concurrency in args.concurrency:
            order = list(sources) if repeat % 2 == 0 else list(sources)[::-1]
            for name in order:
                value = _child(sources[name], args.calls, concurrency)
                results.setdefault((name, concurrency), []).append(value)
    header = f"{'front end':<16} {'conc':>4} {'CPU µs/call (median)':>20} {'min':>6} {'max':>6}"
    print(f"{args.calls} calls per measurement, median of {args.repeats} interleaved repeats")
    print(header)
    print("-" * len(header))
    for concurrency in args.concurrency:
        for name in sources:
            values = results[(name, concurrency)]
            print(
                f"{name:<16} {concurrency:>4} {statistics.median(values):>20.1f} "
                f"{min(values):>6.1f} {max(values):>6.1f}"
            )
        if args.compare_src:
            this = statistics.median(results[("this checkout", concurrency)])
            other = statistics.median(results[("--compare-src", concurrency)])
            print(f"{'':<16} {concurrency:>4} this / compare-src: x{this / other:.2f}")


if __name__ == "__main__":
    main()
