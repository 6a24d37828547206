"""A runner's own /metrics, scraped over HTTP, while it runs FDK functions in hot processes.

Real ``runnerpool runner --bundles --metrics-port 0`` and ``runnerpool lb`` processes on
127.0.0.1. The runner has room for one 128 MB process, so the test can make it start
processes (cold starts), evict an idle one, and NACK a call for memory.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fdk.conftest import fdk_runner_command
from tests.lb.conftest import Metrics, Process, Processes, eventually, get_metrics, runner_status

MB = 1024 * 1024

REGISTRY = """\
[[apps]]
name = "metrics"

[[functions]]
id = "echo"
name = "echo"
app = "metrics"
image = "echo"
memory = 128

[[functions]]
id = "pidnap"
name = "pidnap"
app = "metrics"
image = "pidnap"
memory = 128

[[functions]]
id = "whoami"
name = "whoami"
app = "metrics"
image = "whoami"
memory = 128
"""


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """A short ``TMPDIR`` for the runner: its processes' socket paths must fit 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="rp-met-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_runner(processes: Processes, bundles: Path, state: Path, tmpdir: Path) -> Process:
    """Start an FDK runner with room for one 128 MB process, serving its metrics."""
    return processes.start(
        fdk_runner_command(
            bundles, state, "--max-memory", str(128 * MB), "--no-sandbox", "--metrics-port", "0"
        ),
        "runner listening on ",
        env={"TMPDIR": str(tmpdir)},
        ready_lines=2,
    )


async def scrape(url: str) -> Metrics:
    """GET the runner's /metrics over HTTP and parse it."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200
    return Metrics(response.text)


class TestRunnerMetrics:
    async def test_admissions_nacks_cold_starts_evictions_and_processes(
        self, tmp_path: Path, bundles_root: Path, tmpdir_short: Path
    ) -> None:
        """Each start, warm call, eviction and memory NACK shows in the runner's /metrics.

        Its NACKs equal the load balancer's retries for busy.
        """
        processes = Processes(tmp_path)
        try:
            runner = start_runner(processes, bundles_root, tmp_path / "state", tmpdir_short)
            address, metrics_line = runner.address.split("\n")
            url = metrics_line.removeprefix("runner metrics on ")
            lb = processes.lb([address], config=processes.config(REGISTRY))
            async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
                # A cold start, then a warm call in the same process.
                for _ in range(2):
                    assert (await client.post("/invoke/echo", content=b"x")).status_code == 200
                cold = await scrape(url)
                assert cold("runnerpool_runner_cold_starts_total") == 1
                assert cold("runnerpool_runner_hot_processes", state="idle") == 1
                assert cold("runnerpool_runner_hot_processes", state="busy") == 0
                assert cold("runnerpool_runner_memory_reserved_bytes") == 128 * MB

                # Another function: echo's idle process is evicted to make room for it.
                napping = asyncio.create_task(client.post("/invoke/pidnap", content=b"1.5"))

                async def busy() -> bool:
                    return (await scrape(url))("runnerpool_runner_hot_processes", state="busy") == 1

                await eventually(busy, within=20, what="pidnap's process busy")
                during = await scrape(url)
                assert during("runnerpool_runner_calls_in_flight") == 1
                assert during("runnerpool_runner_hot_processes", state="idle") == 0
                assert during("runnerpool_runner_evictions_total") == 1
                assert during("runnerpool_runner_memory_used_bytes") > 0
                # No room for a third function while pidnap runs: NACKed for memory until the
                # load balancer's placer gives up.
                assert (await client.post("/invoke/whoami")).status_code == 503
                assert (await napping).status_code == 200
                lb_metrics = await get_metrics(client)

            async def built() -> bool:
                states = (await runner_status(address)).custom_status.values()
                return "preparing" not in states

            await eventually(built, within=60, what="the environments built")
            status = await runner_status(address)
            after = await scrape(url)
            nacks = after("runnerpool_runner_nacks_total", reason="memory")
            assert nacks >= 1
            assert nacks == lb_metrics("fn_lb_placer_retry_busy_count_total")
            assert after("runnerpool_runner_nacks_total", reason="concurrency") == 0
            assert after("runnerpool_runner_admissions_total") == 3
            assert after("runnerpool_runner_calls_total", outcome="success") == 3
            assert after("runnerpool_runner_call_duration_seconds_count") == 3
            assert after("runnerpool_runner_cold_starts_total") == 2
            assert after("runnerpool_runner_evictions_total") == 1
            assert after("runnerpool_runner_calls_in_flight") == 0
            assert after("runnerpool_runner_memory_capacity_bytes") == 128 * MB
            # Every environment the runner reports was built once, in this fresh state dir.
            environments = [
                state
                for key, state in status.custom_status.items()
                if key.startswith("environment ")
            ]
            assert after("runnerpool_runner_environment_builds_total", result="ok") == sum(
                state == "ready" for state in environments
            )
            assert after("runnerpool_runner_environment_builds_total", result="failed") == len(
                environments
            ) - sum(state == "ready" for state in environments)
            runner.signal(signal.SIGTERM)
            assert await runner.wait(15) == 0
        finally:
            processes.close()
