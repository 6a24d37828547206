"""Chaos benchmark: a fixed number of calls through the load balancer while runners fail.

A load balancer and three runners (each in its own network namespace when this runs as root
with ``ip``; else on loopback, without the link-down fault) serve the ``record`` function of
:mod:`bench.recording`, declared as six functions (``rec0``..``rec5``) so that every runner is
home to some. Calls are sent open-loop at ``--rate`` per second, ``--calls`` in all, each
sleeping ``--work`` seconds on its runner, which records ``start ID`` and ``end ID`` in a file
per runner. The fault schedule (seconds from the first call):

====== ======================================================================
 0     baseline: no fault
 5     SIGKILL runner 0; 10: a new runner 0 on the same address
 15    SIGSTOP runner 1; 22: SIGCONT
 27    runner 2's link down (a silent partition); 34: up again
 34    recovery, until the last call
====== ======================================================================

Per fault window (calls *sent* in it): calls, answered by class (200, 500, 503, other), lost
(no answer, or 200 with no recorded run), run twice (two ``start`` records, anywhere), the
time from the fault to its detection (the LB's ``runnerpool_runner_ejected`` for the runner,
polled every 100 ms), the time to the first call of one of the runner's home functions
answered 200 by another runner, p99 latency against the baseline window's, and the largest
overrun of a call's own timeout (``--timeout``). Targets: 0 lost, 0 run twice, detection
within 5 s, no overrun beyond 10 s.

Run: ``python -m bench.chaos`` (about a minute; ``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.netns import NetnsUnavailableError, Topology
from bench.rawhttp import post
from runnerpool import BufferedCall, Call, CHPlacer

RUNNERPOOL = [sys.executable, "-m", "runnerpool"]
FUNCTIONS = [f"rec{i}" for i in range(6)]
RUNNERS = 3

#: (seconds from the start, action, runner, window name it opens).
SCHEDULE = [
    (0.0, "none", -1, "baseline"),
    (5.0, "kill", 0, "SIGKILL"),
    (10.0, "restart", 0, "restart"),
    (15.0, "stop", 1, "SIGSTOP"),
    (22.0, "cont", 1, "SIGCONT"),
    (27.0, "down", 2, "link down"),
    (34.0, "up", 2, "recovery"),
]


@dataclass
class Sent:
    """One call: when it was sent and answered, and how."""

    id: str
    fn: str
    sent: float
    answered: float | None = None
    status: int | None = None


@dataclass
class Window:
    """One fault window's figures."""

    name: str
    start: float
    end: float
    runner: int
    calls: list[Sent] = field(default_factory=list)
    detected: float | None = None
    elsewhere: float | None = None


class Cluster:
    """The processes and, when possible, the namespaces of one run."""

    def __init__(self, directory: Path, use_netns: bool) -> None:
        self.directory = directory
        self.topology: Topology | None = None
        self.note = ""
        if use_netns:
            try:
                self.topology = Topology(RUNNERS).create()
            except NetnsUnavailableError as exc:
                self.note = f"no network namespaces ({exc}): loopback, no link-down fault"
        else:
            self.note = "loopback (--no-netns): no link-down fault"
        self.runners: list[subprocess.Popen[str] | None] = [None] * RUNNERS
        self.addresses = [self._runner_address(i) for i in range(RUNNERS)]
        self.lb: subprocess.Popen[str] | None = None
        self.url = ""

    def _runner_address(self, index: int) -> str:
        if self.topology is not None:
            return f"{self.topology.runner_ips[index]}:9190"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return f"127.0.0.1:{sock.getsockname()[1]}"

    def _start(
        self, args: list[str], namespace: str | None, name: str
    ) -> tuple[subprocess.Popen[str], str]:
        command = [*RUNNERPOOL, "--log-level", "warning", *args]
        if namespace is not None and self.topology is not None:
            command = self.topology.run_in(namespace, command)
        with (self.directory / f"{name}.log").open("a") as stderr:
            popen = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "RUNNERPOOL_TEST_RECORD": str(self.directory / f"{name}.rec")},
            )
        assert popen.stdout is not None
        line = popen.stdout.readline()
        if "listening on" not in line:
            popen.kill()
            raise RuntimeError(f"{name} did not start: {line!r}")
        return popen, line.rsplit(" ", 1)[1].strip()

    def start_runner(self, index: int) -> None:
        """Start runner ``index`` on its address (again, after a kill)."""
        host, _, port = self.addresses[index].rpartition(":")
        namespace = None if self.topology is None else self.topology.runner_ns[index]
        self.runners[index], _ = self._start(
            # --insecure: in namespaces the benchmark made, runners listen beyond loopback.
            [
                *("runner", "--host", host, "--port", port, "--insecure"),
                *("--functions", "bench.recording:FUNCTIONS"),
            ],
            namespace,
            f"runner{index}",
        )

    def start_lb(self, timeout: float, *extra: str) -> None:
        """Start the load balancer, its functions having ``timeout`` (``extra``: more options)."""
        toml = '[[apps]]\nname = "chaos"\n' + "".join(
            f'\n[[functions]]\nid = "{fn}"\nname = "{fn}"\napp = "chaos"\nimage = "record"\n'
            f"timeout = {math.ceil(timeout)}\n"
            for fn in FUNCTIONS
        )
        config = self.directory / "functions.toml"
        config.write_text(toml)
        placer = self.directory / "placer.json"
        placer.write_text(json.dumps({"placer_timeout": "30s", "detached_placer_timeout": "30s"}))
        host = "127.0.0.1" if self.topology is None else self.topology.lb_ip
        namespace = None if self.topology is None else self.topology.lb_ns
        self.lb, self.url = self._start(
            ["lb", "--host", host, "--port", "0", "--config", str(config),
             "--runner-addresses", ",".join(self.addresses), "--placer-config", str(placer),
             *extra],
            namespace,
            "lb",
        )  # fmt: skip

    def act(self, action: str, index: int) -> None:
        """Play one action of the schedule on runner ``index``."""
        runner = self.runners[index] if index >= 0 else None
        if action == "kill" and runner is not None:
            runner.kill()
            runner.wait(10)
        elif action == "restart":
            self.start_runner(index)
        elif action == "stop" and runner is not None:
            runner.send_signal(signal.SIGSTOP)
        elif action == "cont" and runner is not None:
            runner.send_signal(signal.SIGCONT)
        elif action in ("down", "up") and self.topology is not None:
            self.topology.set_link(index, action == "up")

    def close(self) -> None:
        """Kill every process and delete the namespaces."""
        for popen in [*self.runners, self.lb]:
            if popen is not None and popen.poll() is None:
                popen.send_signal(signal.SIGCONT)
                popen.kill()
        for popen in [*self.runners, self.lb]:
            if popen is not None:
                popen.wait(10)
                if popen.stdout is not None:
                    popen.stdout.close()
        if self.topology is not None:
            self.topology.destroy()

    def records(self) -> dict[str, list[tuple[str, int]]]:
        """Return each call id's records: (``start``/``end``, runner index)."""
        found: dict[str, list[tuple[str, int]]] = {}
        for index in range(RUNNERS):
            path = self.directory / f"runner{index}.rec"
            if path.exists():
                for line in path.read_text().splitlines():
                    kind, _, call = line.partition(" ")
                    found.setdefault(call, []).append((kind, index))
        return found


async def ejections(
    url: str, addresses: list[str], seen: dict[int, list[float]], t0: float
) -> None:
    """Poll the LB's metrics; record when each runner is first seen ejected after each fault."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                text = (await client.get("/metrics")).text
                now = time.monotonic() - t0
                for family in text_string_to_metric_families(text):
                    if family.name != "runnerpool_runner_ejected":
                        continue
                    for sample in family.samples:
                        if sample.value == 1:
                            seen.setdefault(addresses.index(sample.labels["runner"]), []).append(
                                now
                            )
            await asyncio.sleep(0.1)


async def run(
    args: argparse.Namespace, cluster: Cluster
) -> tuple[list[Window], dict[int, list[float]]]:
    """Send the calls while playing the schedule; return the windows and ejection sightings."""
    windows = [
        Window(name, at, SCHEDULE[i + 1][0] if i + 1 < len(SCHEDULE) else math.inf, runner)
        for i, (at, _, runner, name) in enumerate(SCHEDULE)
    ]
    calls: list[Sent] = []
    seen: dict[int, list[float]] = {}
    host, _, port = cluster.url.removeprefix("http://").rpartition(":")
    t0 = time.monotonic()
    poller = asyncio.create_task(ejections(cluster.url, cluster.addresses, seen, t0))

    async def one(sent: Sent) -> None:
        try:
            async with asyncio.timeout(args.timeout + 60):
                sent.status = await post(
                    host, int(port), f"/invoke/{sent.fn}", f"{sent.id} {args.work}".encode()
                )
        except (OSError, TimeoutError):
            sent.status = None
        sent.answered = time.monotonic() - t0

    async def schedule() -> None:
        for at, action, runner, _ in SCHEDULE:
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            if action == "down" and cluster.topology is None:
                continue
            await asyncio.to_thread(cluster.act, action, runner)

    faults = asyncio.create_task(schedule())
    tasks = []
    for i in range(args.calls):  # open loop: call i leaves at i / rate
        await asyncio.sleep(max(0.0, i / args.rate - (time.monotonic() - t0)))
        sent = Sent(f"c{i}", FUNCTIONS[i % len(FUNCTIONS)], time.monotonic() - t0)
        calls.append(sent)
        tasks.append(asyncio.create_task(one(sent)))
    await asyncio.gather(*tasks)
    await faults
    poller.cancel()
    await asyncio.gather(poller, return_exceptions=True)
    for sent in calls:
        next(w for w in windows if w.start <= sent.sent < w.end).calls.append(sent)
    return windows, seen


def percentile(values: list[float], share: float) -> float:
    """Return the ``share`` percentile (nearest rank) of ``values``, or NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def homes() -> dict[str, int]:
    """Return each function's home runner index (the default placer's first choice)."""
    placer = CHPlacer()
    return {fn: placer.start_index(BufferedCall(Call(fn_id=fn)), RUNNERS) for fn in FUNCTIONS}


def report(
    args: argparse.Namespace, cluster: Cluster, windows: list[Window], seen: dict[int, list[float]]
) -> str:
    """Return the table."""
    records = cluster.records()
    home = homes()
    starts = {call: [r for kind, r in found if kind == "start"] for call, found in records.items()}
    baseline = [c.answered - c.sent for c in windows[0].calls if c.answered is not None]
    base_p99 = percentile(baseline, 0.99)
    rows = []
    header = (
        f"{'window':<10} {'calls':>5} {'200':>5} {'500':>4} {'503':>4} {'other':>5} {'lost':>4} "
        f"{'twice':>5} {'detect s':>8} {'elsewhere s':>11} {'p50 s':>6} {'p99 s':>6} {'x base':>6} "
        f"{'overrun s':>9}"
    )
    for window in windows:
        statuses = [c.status for c in window.calls]
        lost = sum(
            1 for c in window.calls if c.status is None or (c.status == 200 and c.id not in starts)
        )
        twice = sum(1 for c in window.calls if len(starts.get(c.id, [])) > 1)
        detect = elsewhere = "-"
        if window.runner >= 0 and window.name in ("SIGKILL", "SIGSTOP", "link down"):
            after = [t for t in seen.get(window.runner, []) if t >= window.start]
            if after:
                detect = f"{after[0] - window.start:.1f}"
            firsts = [
                c.answered
                for c in window.calls
                if c.status == 200
                and home[c.fn] == window.runner
                and c.answered is not None
                and window.runner not in starts.get(c.id, [])
            ]
            if firsts:
                elsewhere = f"{min(firsts) - window.start:.1f}"
        latencies = [c.answered - c.sent for c in window.calls if c.answered is not None]
        p99 = percentile(latencies, 0.99)
        overrun = max((lat - args.timeout for lat in latencies), default=0.0)
        rows.append(
            f"{window.name:<10} {len(window.calls):>5} {statuses.count(200):>5} "
            f"{statuses.count(500):>4} {statuses.count(503):>4} "
            f"{sum(1 for s in statuses if s not in (200, 500, 503, None)):>5} {lost:>4} {twice:>5} "
            f"{detect:>8} {elsewhere:>11} {percentile(latencies, 0.5):>6.2f} {p99:>6.2f} "
            f"{p99 / base_p99:>6.1f} "
            f"{max(0.0, overrun):>9.1f}"
        )
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> None:
    """Run the chaos benchmark and print its table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls in all (default 1000)")
    parser.add_argument("--rate", type=float, default=25.0, help="calls per second (default 25)")
    parser.add_argument("--work", type=float, default=0.2, help="seconds each call sleeps (0.2)")
    parser.add_argument("--timeout", type=float, default=10.0, help="the functions' timeout (10 s)")
    parser.add_argument("--no-netns", action="store_true", help="loopback only, no link-down fault")
    parser.add_argument("--logs", help="keep the processes' logs and records in this directory")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.logs:
            directory = args.logs
            Path(directory).mkdir(parents=True, exist_ok=True)
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="rp-chaos-"))
        cluster = Cluster(Path(directory), use_netns=not args.no_netns)
        try:
            for index in range(RUNNERS):
                cluster.start_runner(index)
            cluster.start_lb(args.timeout)
            windows, seen = asyncio.run(run(args, cluster))
            time.sleep(args.work + 1)  # runs still finishing record their end
            print(
                f"chaos: {args.calls} calls at {args.rate:g}/s, {args.work:g} s each, "
                f"{RUNNERS} runners; "
                f"{cluster.note or 'LB and runners in their own network namespaces'}"
            )
            print(report(args, cluster, windows, seen))
        finally:
            cluster.close()


if __name__ == "__main__":
    main()
