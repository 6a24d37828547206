"""The runner's own metrics: counted by the service, read from its registry."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from runnerpool import APIError, Call
from runnerpool.cli import main
from runnerpool.runner import (
    Capacity,
    FunctionRequest,
    InProcessExecutor,
    MetricsServer,
    RunnerMetrics,
    RunnerService,
)
from tests.lb.conftest import Metrics
from tests.runner.test_service import FUNCTIONS, call_stream, service


async def unavailable(request: FunctionRequest) -> bytes:
    raise APIError("a dependency of the platform is down", status_code=500)


def scrape(metrics: RunnerMetrics) -> Metrics:
    """The runner's metrics as an exposition, parsed."""
    return Metrics(generate_latest(metrics.registry).decode())


class TestCounts:
    async def test_outcomes_and_admissions(self) -> None:
        """Each admitted call ends with one outcome; bad input is rejected, never admitted."""
        executor = InProcessExecutor(FUNCTIONS)  # type: ignore[arg-type]
        executor.register("unavailable", unavailable)
        runner = RunnerService(executor)
        for image, body in (
            ("echo", b"x"),
            ("user-error", b""),
            ("crash", b""),  # the function's own failure: 502
            ("unavailable", b""),
            ("bad\x01image", b""),
        ):
            await runner.engage(call_stream(Call(image=image), body))
        await runner.engage(call_stream(Call(image="slow", timeout=1), b"3"))
        counts = scrape(runner.metrics)
        outcomes = {
            outcome: counts("runnerpool_runner_calls_total", outcome=outcome)
            for outcome in ("success", "function_error", "timeout", "error", "rejected")
        }
        assert outcomes == {
            "success": 1,
            "function_error": 2,
            "timeout": 1,
            "error": 1,
            "rejected": 1,  # not a valid image: refused before admission
        }
        assert counts("runnerpool_runner_admissions_total") == 5
        assert counts("runnerpool_runner_call_duration_seconds_count") == 5
        assert counts("runnerpool_runner_calls_in_flight") == 0

    async def test_nack_reasons(self) -> None:
        """A NACK is counted by the first limit reached: call slots, memory, or draining."""
        slots = service(capacity=Capacity(max_calls=1))
        memory = service(capacity=Capacity(memory_mb=128))
        for runner in (slots, memory):
            holding = asyncio.create_task(
                runner.engage(call_stream(Call(image="slow", memory=128), b"0.2"))
            )
            await asyncio.sleep(0.05)
            during = scrape(runner.metrics)
            assert during("runnerpool_runner_calls_in_flight") == 1
            await runner.engage(call_stream(Call(image="echo", memory=64)))
            await holding
        draining = service()
        draining.start_drain()
        await draining.engage(call_stream(Call(image="echo")))
        assert scrape(slots.metrics)("runnerpool_runner_nacks_total", reason="concurrency") == 1
        assert scrape(memory.metrics)("runnerpool_runner_nacks_total", reason="memory") == 1
        assert scrape(draining.metrics)("runnerpool_runner_nacks_total", reason="draining") == 1
        assert scrape(slots.metrics)("runnerpool_runner_nacks_total", reason="memory") == 0
        assert scrape(memory.metrics)("runnerpool_runner_call_slots") == 0  # no cap: absent
        assert scrape(memory.metrics)("runnerpool_runner_memory_capacity_bytes") == 128 << 20

    async def test_shared_metrics_object(self) -> None:
        """An embedder's RunnerMetrics, in its own registry, gets the service's counts."""
        shared = RunnerMetrics()
        runner = service(metrics=shared)
        await runner.engage(call_stream(Call(image="echo"), b"x"))
        assert runner.metrics is shared
        assert scrape(shared)("runnerpool_runner_admissions_total") == 1


class TestServer:
    async def test_serves_the_registry_over_http_on_loopback(self) -> None:
        """GET /metrics on the metrics server answers the registry's exposition."""
        runner = service()
        await runner.engage(call_stream(Call(image="echo"), b"x"))
        async with MetricsServer(runner.metrics.registry, port=0) as server:
            assert server.address.startswith("127.0.0.1:")
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://{server.address}/metrics")
        assert response.status_code == 200
        assert Metrics(response.text)("runnerpool_runner_admissions_total") == 1

    async def test_port_in_use_is_an_oserror(self) -> None:
        """A port already taken raises OSError at start, naming the address; nothing serves."""
        async with MetricsServer(RunnerMetrics().registry) as first:
            second = MetricsServer(RunnerMetrics().registry, port=first.port)
            with pytest.raises(OSError, match=f"cannot serve metrics on {first.address}"):
                await second.start()
            await second.aclose()

    def test_cli_reports_a_metrics_port_in_use(self) -> None:
        """``runnerpool runner --metrics-port`` on a taken port exits 1 with a clear message."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = CliRunner().invoke(
                main, ["runner", "--port", "0", "--metrics-port", str(port)]
            )
        assert result.exit_code == 1
        assert f"cannot serve metrics on 127.0.0.1:{port}" in result.output


class TestSettings:
    def test_metrics_port_is_checked(self) -> None:
        """RunnerSettings names metrics_port when it is no TCP port; loopback by default."""
        from runnerpool.runner import RunnerSettings

        assert RunnerSettings().metrics_host == "127.0.0.1"
        assert RunnerSettings().metrics_port is None
        with pytest.raises(ValueError, match=r"RunnerSettings\.metrics_port must be"):
            RunnerSettings(metrics_port=70000)
