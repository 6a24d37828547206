"""Gray failures, with real processes and signals: a frozen runner, a partition, no runner, no LB.

With the load balancer's defaults (keepalive PING after 1 s of silence, dead after 3 s more,
ejection after 2 failures in a row), a frozen or partitioned runner is found within about 5 s.
The calls it had end with 500 (committed: never retried), new calls of its functions go to
other runners, and once it answers again it returns to rotation and its functions go home.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from bench.netns import NetnsUnavailableError, Topology

from runnerpool import BufferedCall, Call, CHPlacer
from tests.lb.conftest import (
    FAST_PLACER,
    FUNCTIONS_TOML,
    RUNNERPOOL,
    Process,
    Processes,
    get_metrics,
    runner_status,
)

#: Placement may search for a long time: a fast answer must come from detection, not from it.
PLACER = {**FAST_PLACER, "placer_timeout": "60s", "detached_placer_timeout": "60s"}

RECORD_TOML = (
    FUNCTIONS_TOML
    + """
[[functions]]
id = "record"
name = "record"
app = "tests"
image = "record"
"""
)


def home_of(fn_id: str, runners: int) -> int:
    """Return the index of the runner the default placer tries first for ``fn_id``."""
    return CHPlacer().start_index(BufferedCall(Call(fn_id=fn_id)), runners)


async def survive_freeze(
    client: httpx.AsyncClient,
    address: str,
    received: Callable[[], Awaitable[int]],
    freeze: Callable[[], None],
    thaw: Callable[[], None],
    lb: Process,
) -> None:
    """Load ``slow``'s home runner, freeze it, check the expectations, thaw it, check again.

    Args:
        client: The load balancer's client.
        address: The home runner's address, as the load balancer knows it.
        received: Returns how many calls the home runner received so far.
        freeze: Freezes or cuts off the home runner.
        thaw: Brings it back.
        lb: The load balancer process (for its log).
    """
    before = await received()
    committed = [asyncio.create_task(client.post("/invoke/slow", content=b"30")) for _ in range(3)]
    for _ in range(100):  # bounded: 100 x 0.05 s
        if await received() == before + 3:
            break
        await asyncio.sleep(0.05)
    freeze()
    frozen_at = time.monotonic()
    # Calls the frozen runner had: 500 (committed, never retried), within about 10 s.
    for response in await asyncio.gather(*committed):
        assert response.status_code == 500
    assert time.monotonic() - frozen_at < 12
    # New calls of the same function: answered by other runners within a few seconds.
    answered_at = None
    for _ in range(20):  # bounded: each call ends within the keepalive's 4 s
        response = await client.post("/invoke/slow", content=b"0")
        if response.status_code == 200:
            answered_at = time.monotonic()
            break
        assert response.status_code == 500
    assert answered_at is not None
    assert answered_at - frozen_at < 12
    for _ in range(5):  # the runner is ejected now: no call is lost on it any more
        response = await client.post("/invoke/slow", content=b"0")
        assert response.status_code == 200
    metrics = await get_metrics(client)
    assert metrics("runnerpool_runner_ejected", runner=address) == 1
    assert "ejected after" in lb.stderr()
    thaw()
    # Back in rotation, and the function's calls go home again.
    for _ in range(100):  # bounded: 100 x 0.2 s
        metrics = await get_metrics(client)
        if metrics("runnerpool_runner_ejected", runner=address) == 0:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the runner never came back")
    before = await received()
    assert (await client.post("/invoke/slow", content=b"0")).status_code == 200
    assert await received() == before + 1
    assert "back in rotation" in lb.stderr()


class TestFrozenRunner:
    async def test_sigstop_home_runner_under_load(self, processes: Processes) -> None:
        """SIGSTOP of a function's home runner: its calls end 500, others answer, it comes back."""
        runners = [processes.runner() for _ in range(3)]
        lb = processes.lb(
            [r.address for r in runners],
            "--ejection-time",
            "0.5",
            "--max-ejection-time",
            "2",
            placer_config=PLACER,
        )
        home = runners[home_of("slow", 3)]

        async def received() -> int:
            return (await runner_status(home.address)).requests_received

        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            try:
                await survive_freeze(
                    client,
                    home.address,
                    received,
                    lambda: home.signal(signal.SIGSTOP),
                    lambda: home.signal(signal.SIGCONT),
                    lb,
                )
            finally:
                home.signal(signal.SIGCONT)

    async def test_lb_drains_within_its_drain_timeout_while_a_runner_is_frozen(
        self, processes: Processes
    ) -> None:
        """SIGTERM to the LB while a call hangs on a frozen runner: it exits by its drain timeout.

        Keepalive is set long here, so that only the drain timeout can end the call.
        """
        runners = [processes.runner() for _ in range(2)]
        lb = processes.lb(
            [r.address for r in runners],
            *("--runner-keepalive-timeout", "120", "--drain-timeout", "2"),
            placer_config=PLACER,
        )
        home = runners[home_of("slow", 2)]
        try:
            async with httpx.AsyncClient(base_url=lb.address, timeout=60) as client:
                call = asyncio.create_task(client.post("/invoke/slow", content=b"60"))
                for _ in range(100):  # bounded: 100 x 0.05 s
                    if (await runner_status(home.address)).requests_received:
                        break
                    await asyncio.sleep(0.05)
                home.signal(signal.SIGSTOP)
                lb.signal(signal.SIGTERM)
                stopped_at = time.monotonic()
                assert await lb.wait(30) == 0
                assert time.monotonic() - stopped_at < 15  # 2 s of drain, not the call's 60
                response = await call
            assert response.status_code == 500  # cancelled: it may have run, never retried
        finally:
            home.signal(signal.SIGCONT)


@pytest.fixture
def topology() -> Iterator[Topology]:
    """Three runner namespaces and the load balancer's; deleted at the end, whatever happens."""
    made = Topology(3)
    try:
        made.create()
    except NetnsUnavailableError as exc:
        print(f"skipped: cannot make network namespaces: {exc}")
        pytest.skip(f"cannot make network namespaces: {exc}")
    try:
        yield made
    finally:
        made.destroy()


class TestPartition:
    async def test_link_down_mid_load(self, processes: Processes, topology: Topology) -> None:
        """A runner's link goes down mid-load (each process in its own namespace): as SIGSTOP."""
        runners = [
            processes.start(
                # Inside namespaces this test made: plain gRPC beyond loopback is the point.
                ["--log-level", "warning", "runner", "--host", ip, "--port", "0", "--insecure"],
                "runner listening on ",
                prefix=topology.run_in(ns, []),
            )
            for ns, ip in zip(topology.runner_ns, topology.runner_ips, strict=True)
        ]
        addresses = [r.address for r in runners]
        placer = processes.config(json.dumps(PLACER), "p.json")
        lb = processes.start(
            ["--log-level", "warning", "lb", "--host", topology.lb_ip, "--port", "0",
             "--config", str(processes.config()), "--runner-addresses", ",".join(addresses),
             "--placer-config", str(placer), "--ejection-time", "0.5", "--max-ejection-time", "2",
             "--workers", "1"],
            "load balancer listening on ",
            prefix=topology.run_in(topology.lb_ns, []),
        )  # fmt: skip
        home = home_of("slow", 3)

        async def received() -> int:
            # The runners are reachable from the load balancer's namespace only.
            status = await asyncio.to_thread(
                subprocess.run,
                topology.run_in(topology.lb_ns, [*RUNNERPOOL, "status", addresses[home]]),
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            count: int = json.loads(status.stdout)["requests_received"]
            return count

        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            try:
                await survive_freeze(
                    client,
                    addresses[home],
                    received,
                    lambda: topology.set_link(home, False),
                    lambda: topology.set_link(home, True),
                    lb,
                )
            finally:
                topology.set_link(home, True)


class TestNoRunner:
    async def test_every_runner_killed(self, processes: Processes) -> None:
        """Every runner killed: a call gets 503 with Retry-After in seconds, /ready turns 503."""
        runners = [processes.runner() for _ in range(2)]
        lb = processes.lb([r.address for r in runners], placer_config=PLACER)
        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            assert (await client.post("/invoke/echo", content=b"x")).status_code == 200
            ready = await client.get("/ready")
            assert ready.status_code == 200
            assert ready.json() == {"ready": True, "reachable": 2, "runners": 2}
            for runner in runners:
                runner.signal(signal.SIGKILL)
                await runner.wait()
            start = time.monotonic()
            response = await client.post("/invoke/echo", content=b"x")
            assert response.status_code == 503
            assert response.headers["retry-after"]
            assert time.monotonic() - start < 5  # the placer timeout is 60 s
            for _ in range(50):  # bounded: 50 x 0.2 s
                ready = await client.get("/ready")
                if ready.status_code == 503:
                    break
                await asyncio.sleep(0.2)
            assert ready.status_code == 503
            assert ready.json() == {"ready": False, "reachable": 0, "runners": 2}
            assert (await client.get("/health")).status_code == 200  # alive, not ready


class TestDetachedSurvivesTheLB:
    async def test_sigkill_lb_with_detached_calls_in_flight(
        self, processes: Processes, tmp_path: Path
    ) -> None:
        """SIGKILL of the LB after ten 202s: every acknowledged call runs to its end, once."""
        record = tmp_path / "runs.txt"
        runner = processes.start(
            ["--log-level", "warning", "runner", "--port", "0",
             "--functions", "bench.recording:FUNCTIONS"],
            "runner listening on ",
            env={"RUNNERPOOL_TEST_RECORD": str(record)},
        )  # fmt: skip
        config = processes.config(RECORD_TOML)
        placer = processes.config(json.dumps(PLACER), "p.json")
        lb = processes.start(
            ["--log-level", "warning", "lb", "--port", "0", "--config", str(config),
             "--runner-addresses", runner.address, "--placer-config", str(placer),
             "--workers", "1"],
            "load balancer listening on ",
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/invoke/record",
                        content=f"call{i} 1.5".encode(),
                        headers={"Fn-Invoke-Type": "detached"},
                    )
                    for i in range(10)
                )
            )
        assert [r.status_code for r in responses] == [202] * 10
        lb.signal(signal.SIGKILL)
        await lb.wait()
        lines: list[str] = []
        for _ in range(100):  # bounded: 100 x 0.1 s, after the calls' 1.5 s
            lines = record.read_text().splitlines() if record.exists() else []
            if sum(line.startswith("end ") for line in lines) >= 10:
                break
            await asyncio.sleep(0.1)
        ends = sorted(line for line in lines if line.startswith("end "))
        assert ends == sorted(f"end call{i}" for i in range(10))
        starts = sorted(line for line in lines if line.startswith("start "))
        assert starts == sorted(f"start call{i}" for i in range(10))
        assert (await runner_status(runner.address)).active_request_count == 0
