"""The load balancer's /metrics reconciled exactly with the calls a test made (spec §3).

One runner of one call slot behind a load balancer process with a 500 ms placer timeout, so
that a call made while the slot is taken is refused after a known time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.lb.conftest import (
    Metrics,
    Process,
    Processes,
    eventually,
    get_metrics,
    wait_active,
)


@dataclass
class Single:
    """A load balancer in front of one runner of one slot, and a client of it."""

    runner: Process
    lb: Process
    client: httpx.AsyncClient


@pytest.fixture
async def single(processes: Processes) -> AsyncIterator[Single]:
    """A fresh load balancer (its metrics start at zero) in front of a one-slot runner."""
    runner = processes.runner("--max-calls", "1")
    lb = processes.lb([runner.address], "--max-request-size", "1000")
    async with httpx.AsyncClient(base_url=lb.address, timeout=10) as client:
        yield Single(runner, lb, client)


class TestReconcile:
    async def test_known_sequence_of_calls(self, single: Single) -> None:
        """6 successes, 2 failures, 1 too-busy and 1 canceled call give exactly these metrics."""
        client = single.client
        for index in range(5):
            assert (await client.post("/invoke/echo", content=str(index))).status_code == 200
        for _ in range(2):
            assert (await client.post("/invoke/fail", content=b"x")).status_code == 502
        # Refused before the agent: never counted.
        assert (await client.post("/invoke/no-such-fn")).status_code == 404
        assert (await client.put("/invoke/echo")).status_code == 405
        assert (await client.get("/nowhere")).status_code == 404
        # The slot taken by a 6th success, a call is refused after the placer timeout.
        occupying = asyncio.create_task(client.post("/invoke/slow", content=b"0.8"))
        await wait_active([single.runner.address], 1)
        assert (await client.post("/invoke/echo", content=b"x")).status_code == 503
        assert (await occupying).status_code == 200
        # A client that leaves mid-call.
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/invoke/slow", content=b"3", timeout=0.3)

        async def settled() -> bool:
            metrics = await get_metrics(client)
            return metrics("fn_canceled_total") == 1 and metrics("fn_running") == 0

        await eventually(settled, what="the canceled call accounted")
        metrics = await get_metrics(client)

        assert {
            name: metrics(name)
            for name in (
                "fn_calls_total",
                "fn_completed_total",
                "fn_errors_total",
                "fn_server_busy_total",
                "fn_canceled_total",
                "fn_timeouts_total",
                "fn_running",
                "fn_queued",
            )
        } == {
            "fn_calls_total": 10,
            "fn_completed_total": 6,
            "fn_errors_total": 2,
            "fn_server_busy_total": 1,
            "fn_canceled_total": 1,
            "fn_timeouts_total": 0,
            "fn_running": 0,
            "fn_queued": 0,
        }
        assert {
            status: metrics("fn_lb_call_latency_count", call_status=status)
            for status in ("completed", "errors", "server_busy", "canceled", "timeouts")
        } == {"completed": 6, "errors": 2, "server_busy": 1, "canceled": 1, "timeouts": 0}
        # The placer: one placement per counted call.
        assert {
            name: metrics(f"fn_lb_placer_{name}_total")
            for name in (
                "placed_ok_count",
                "placed_error_count",
                "placed_abort_count",
                "client_cancelled_count",
                "timeout_count",
                "retry_error_count",
                "rp_empty_count",
                "rp_error_count",
            )
        } == {
            "placed_ok_count": 6,
            "placed_error_count": 2,
            "placed_abort_count": 1,
            "client_cancelled_count": 1,
            "timeout_count": 1,
            "retry_error_count": 0,
            "rp_empty_count": 0,
            "rp_error_count": 0,
        }
        assert metrics("fn_lb_placer_attempt_count_count") == 10
        assert metrics("fn_lb_placer_latency_count") == 10
        # Nine placements took one attempt; the refused one tried once per NACK.
        busy = metrics("fn_lb_placer_retry_busy_count_total")
        assert busy >= 2
        assert metrics("fn_lb_placer_attempt_count_sum") == 9 + busy
        # Fn's [lower, upper) buckets: an attempt count of 1 is counted under le="2".
        assert metrics("fn_lb_placer_attempt_count_bucket", le="0") == 0
        assert metrics("fn_lb_placer_attempt_count_bucket", le="2") == 9
        assert metrics("fn_lb_placer_attempt_count_bucket", le="+Inf") == 10

    async def test_fresh_load_balancer_exports_no_call_counts(self, single: Single) -> None:
        """Before any call, only the gauges are exported, at zero (Fn records nothing yet)."""
        metrics = await get_metrics(single.client)
        assert metrics("fn_queued") == metrics("fn_running") == 0
        recorded = {name for name, _ in metrics.samples}
        assert not {"fn_calls_total", "fn_completed_total", "fn_lb_placer_attempt_count_count"} & (
            recorded
        )

    async def test_request_too_large_is_counted_either_way(self, single: Single) -> None:
        """A 413, by Content-Length or while reading a chunked body, is a call and an error."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * 600

        client = single.client
        assert (await client.post("/invoke/echo", content=b"x" * 1001)).status_code == 413
        assert Metrics((await client.get("/metrics")).text)("fn_calls_total") == 1
        assert (await client.post("/invoke/echo", content=chunks())).status_code == 413
        metrics = await get_metrics(client)
        assert (metrics("fn_calls_total"), metrics("fn_errors_total")) == (2, 2)
        assert metrics("fn_lb_call_latency_count", call_status="errors") == 2
        assert metrics("fn_lb_placer_attempt_count_count") == 0  # never placed
        assert metrics("fn_queued") == metrics("fn_running") == 0
