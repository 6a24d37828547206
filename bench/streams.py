"""No hidden queue: many slow calls of one function at once, through the load balancer.

A load balancer and three runners (loopback) serve ``record`` (:mod:`bench.recording`); 300
calls of one function, each sleeping 1 s, are sent at once. With one HTTP/2 connection per
runner and grpclib's behaviour, calls beyond the runner's 100 streams per connection waited
inside the load balancer (300 calls took three rounds on the home runner while the others
idled). Two ways out are measured against each other in the same run:

* ``--runner-connections 1``: a full connection counts as a refusal, so calls spill to the
  function's next runners;
* ``--runner-connections 4`` (the default): another connection to the same runner opens, so
  every call runs on its home runner at once (the runner decides, and NACKs when it is full).

The client is :mod:`bench.rawhttp` (one connection per call). For each: the wall time of the
300 calls, their p50 and p99 latency, and the calls each runner ran.

Run: ``python -m bench.streams`` (about 30 s).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.chaos import RUNNERS, Cluster, percentile
from bench.rawhttp import post

CALLS = 300


async def burst(url: str) -> tuple[float, list[float]]:
    """Send CALLS calls of ``rec0`` at once; return the wall time and the latencies."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    assert await post(host, int(port), "/invoke/rec0", b"warm 0") == 200

    async def one(i: int) -> float:
        start = time.monotonic()
        status = await post(host, int(port), "/invoke/rec0", f"s{i} 1".encode())
        assert status == 200, status
        return time.monotonic() - start

    start = time.monotonic()
    latencies = await asyncio.gather(*(one(i) for i in range(CALLS)))
    return time.monotonic() - start, list(latencies)


def main() -> None:
    """Measure both settings and print the table."""
    rows = []
    for connections in ("1", "4"):
        with tempfile.TemporaryDirectory(prefix="rp-streams-") as directory:
            cluster = Cluster(Path(directory), use_netns=False)
            try:
                for index in range(RUNNERS):
                    cluster.start_runner(index)
                cluster.start_lb(30, "--runner-connections", connections)
                wall, latencies = asyncio.run(burst(cluster.url))
                time.sleep(0.5)
                per_runner = Counter(
                    runner
                    for call, found in cluster.records().items()
                    if call.startswith("s")
                    for kind, runner in found
                    if kind == "start"
                )
            finally:
                cluster.close()
        rows.append((connections, wall, latencies, per_runner))
    print(f"{CALLS} calls of one function at once, 1 s each, {RUNNERS} runners")
    print(f"{'connections':>11} {'wall s':>7} {'p50 s':>6} {'p99 s':>6}  calls per runner")
    for connections, wall, latencies, per_runner in rows:
        spread = " ".join(str(per_runner.get(i, 0)) for i in range(RUNNERS))
        print(
            f"{connections:>11} {wall:>7.2f} {percentile(latencies, 0.5):>6.2f} "
            f"{percentile(latencies, 0.99):>6.2f}  {spread}"
        )
    print(f"wall time, 4 connections / 1 connection: {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
