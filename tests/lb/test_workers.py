"""``runnerpool lb --workers 2``: two real worker processes on one port, one /metrics, one drain.

Each worker serves its own metrics on a Unix socket in the workers' private directory; the
tests find those sockets through ``/proc`` (the worker's open sockets, matched in
``/proc/net/unix``) to read each worker's own counts next to the summed ``/metrics``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from runnerpool.lb import WorkerContext, default_workers
from runnerpool.lb._worker_metrics import WorkerMetrics, merge_expositions
from tests.lb.conftest import (
    FUNCTIONS_TOML,
    RUNNERPOOL,
    Metrics,
    Process,
    Processes,
    eventually,
    get_metrics,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes"
)


@pytest.fixture(scope="module")
def runners(module_processes: Processes) -> list[Process]:
    """Two runner processes shared by the module's load balancers."""
    return [module_processes.runner(), module_processes.runner()]


def worker_pids(parent: int) -> list[int]:
    """Return the pids of a process's children."""
    text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
    return [int(pid) for pid in text.split()]


def metrics_socket(pid: int) -> str:
    """Return the path of the Unix socket on which worker ``pid`` serves its own metrics."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and fields[7].endswith(".sock"):
            return fields[7]
    raise AssertionError(f"worker {pid} serves no metrics socket")


async def own_metrics(pid: int) -> Metrics:
    """Read one worker's own metrics (not summed) from its Unix socket."""
    reader, writer = await asyncio.open_unix_connection(metrics_socket(pid))
    data = await reader.read()
    writer.close()
    return Metrics(data.decode())


async def call_on_new_connection(base_url: str, fn_id: str, body: bytes) -> httpx.Response:
    """POST a call on a fresh connection (the kernel picks a worker per connection)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return await client.post(f"/invoke/{fn_id}", content=body)


class TestWorkers:
    async def test_calls_are_served_by_both_workers_and_metrics_sum_exactly(
        self, processes: Processes, runners: list[Process]
    ) -> None:
        """40 calls on 40 connections: both workers serve some, /metrics has their exact sum."""
        lb = processes.lb([r.address for r in runners], "--workers", "2")
        pids = worker_pids(lb.popen.pid)
        assert len(pids) == 2
        responses = await asyncio.gather(
            *(call_on_new_connection(lb.address, "echo", b"%d" % i) for i in range(40))
        )
        assert [(r.status_code, r.content) for r in responses] == [
            (200, b"%d" % i) for i in range(40)
        ]
        own = [await own_metrics(pid) for pid in pids]
        per_worker = [m("fn_calls_total") for m in own]
        assert all(count > 0 for count in per_worker), per_worker
        async with httpx.AsyncClient(base_url=lb.address, timeout=10) as client:
            summed = await get_metrics(client)
        assert summed("fn_calls_total") == sum(per_worker) == 40
        assert summed("fn_completed_total") == 40
        # A histogram's buckets, count and sum add up too.
        name = "fn_lb_call_latency_count"
        assert summed(name, call_status="completed") == 40
        assert sum(m(name, call_status="completed") for m in own) == 40
        # The process collectors: CPU time adds up, python_info stays 1.
        assert [v for (n, _), v in summed.samples.items() if n == "python_info"] == [1.0]
        cpu = "process_cpu_seconds_total"
        assert summed(cpu) >= sum(m(cpu) for m in own) > max(m(cpu) for m in own)
        assert (await client_ready(lb.address)).status_code == 200

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
    async def test_a_signal_drains_both_workers(
        self, processes: Processes, runners: list[Process], signum: int
    ) -> None:
        """Slow calls in flight on both workers finish with 200; then every process exits 0."""
        lb = processes.lb([r.address for r in runners], "--workers", "2", log_level="info")
        pids = worker_pids(lb.popen.pid)
        calls = [
            asyncio.create_task(call_on_new_connection(lb.address, "slow", b"1")) for _ in range(8)
        ]

        async def both_running() -> bool:
            return all([(await own_metrics(pid))("fn_running") > 0 for pid in pids])

        await eventually(both_running, what="calls running on both workers")
        lb.signal(signum)
        responses = await asyncio.gather(*calls)
        assert [(r.status_code, r.content) for r in responses] == [(200, b"slept 1s")] * 8
        assert await lb.wait() == 0
        assert all(_gone(pid) for pid in pids)
        assert lb.stderr().count("Draining: new calls get 503") == 2

    async def test_a_dead_worker_stops_the_load_balancer_loudly(
        self, processes: Processes, runners: list[Process]
    ) -> None:
        """SIGKILL on one worker: the other drains and the supervisor exits 1, saying why."""
        lb = processes.lb([r.address for r in runners], "--workers", "2")
        dead, other = worker_pids(lb.popen.pid)
        os.kill(dead, signal.SIGKILL)
        assert await lb.wait() == 1
        assert f"(pid {dead}) exited with status -9" in lb.stderr()

        async def gone() -> bool:
            return _gone(other)

        await eventually(gone, what="the other worker exited")


async def client_ready(base_url: str) -> httpx.Response:
    """GET /ready of the load balancer."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.get("/ready")


def _gone(pid: int) -> bool:
    """Return whether process ``pid`` has exited (it may remain a zombie until reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


class TestPort:
    def test_a_port_in_use_is_the_usual_error(self, tmp_path: Path) -> None:
        """A port another socket listens on: exit 1, "cannot serve on", as with one process."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            result = _run_lb(tmp_path, "--port", str(port), "--workers", "2")
        assert result.returncode == 1
        assert f"cannot serve on 127.0.0.1:{port}" in result.stderr

    def test_a_second_lb_cannot_share_the_port(
        self, processes: Processes, runners: list[Process], tmp_path: Path
    ) -> None:
        """SO_REUSEPORT does not let a second ``lb --workers 2`` on the same port in."""
        lb = processes.lb([runners[0].address], "--workers", "2")
        port = lb.address.rpartition(":")[2]
        result = _run_lb(tmp_path, "--port", port, "--workers", "2")
        assert result.returncode == 1
        assert f"cannot serve on 127.0.0.1:{port}" in result.stderr


def _run_lb(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``runnerpool lb`` (on the test functions, runner 127.0.0.1:1) to its end."""
    config = directory / "functions.toml"
    config.write_text(FUNCTIONS_TOML)
    return subprocess.run(
        [*RUNNERPOOL, "lb", "--config", str(config), "--runner-addresses", "127.0.0.1:1", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class TestDefault:
    @pytest.mark.parametrize(
        ("cpu_max", "expected"),
        [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("junk", None)],
    )
    def test_a_cgroup_quota_lowers_the_default(
        self, tmp_path: Path, cpu_max: str, expected: int | None
    ) -> None:
        """One worker per core of the affinity mask, or the cgroup v2 quota rounded up if lower."""
        path = tmp_path / "cpu.max"
        path.write_text(cpu_max)
        cores = len(os.sched_getaffinity(0))
        assert default_workers(path) == (cores if expected is None else min(cores, expected))


class TestPeers:
    async def test_a_sibling_that_does_not_answer_is_left_out_with_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Worker 0 of 2 with no worker 1 listening: its own metrics, and a warning naming 1."""
        with socket.socket() as sock:
            context = WorkerContext(0, 2, tmp_path, sock)
            shared = WorkerMetrics(context)
            await shared.start()
            try:
                text = (await shared.exposition()).decode()
                reader, writer = await asyncio.open_unix_connection(context.metrics_path(0))
                own = (await reader.read()).decode()
                writer.close()
            finally:
                await shared.aclose()
        # The same samples as its own (values may move between the reads: CPU time, say).
        assert set(Metrics(text).samples) == set(Metrics(own).samples)
        assert "Metrics of worker 1 left out" in caplog.text
        assert not context.metrics_path(0).exists()


class TestMerge:
    def test_counters_histograms_and_gauges_add_up_process_gauges_do_not(self) -> None:
        """Two workers' texts: counters, buckets and gauges summed; the start time is the min."""
        one = (
            '# HELP calls Calls.\n# TYPE calls counter\ncalls_total{fn="a"} 3.0\n'
            "# HELP lat Latency.\n# TYPE lat histogram\n"
            'lat_bucket{le="1"} 1.0\nlat_bucket{le="+Inf"} 2.0\nlat_count 2.0\nlat_sum 5.0\n'
            "# HELP running Running.\n# TYPE running gauge\nrunning 1.0\n"
            "# HELP process_start_time_seconds Start.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 100.0\n"
        )
        two = (
            '# HELP calls Calls.\n# TYPE calls counter\ncalls_total{fn="a"} 4.0\n'
            'calls_total{fn="b"} 1.0\n'
            "# HELP lat Latency.\n# TYPE lat histogram\n"
            'lat_bucket{le="1"} 0.0\nlat_bucket{le="+Inf"} 1.0\nlat_count 1.0\nlat_sum 7.5\n'
            "# HELP running Running.\n# TYPE running gauge\nrunning 2.0\n"
            "# HELP process_start_time_seconds Start.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 90.0\n"
        )
        merged = Metrics(merge_expositions([one, two]).decode())
        assert merged("calls_total", fn="a") == 7
        assert merged("calls_total", fn="b") == 1
        assert merged("lat_bucket", le="1") == 1
        assert merged("lat_bucket", le="+Inf") == 3
        assert (merged("lat_count"), merged("lat_sum")) == (3, 12.5)
        assert merged("running") == 3
        assert merged("process_start_time_seconds") == 90

    def test_one_text_comes_back_as_it_was(self) -> None:
        """Merging a single exposition changes nothing: names, help, types, order, values."""
        text = (
            '# HELP calls_total Calls.\n# TYPE calls_total counter\ncalls_total{fn="a"} 3.0\n'
            "# HELP running Running.\n# TYPE running gauge\nrunning 1.0\n"
        )
        assert merge_expositions([text]).decode() == text
