"""Stopping a load balancer process: SIGTERM or SIGINT drains, a second signal stops at once.

Observed behaviour (runnerpool's LBServer on uvicorn): on the first signal the front gate
closes, but uvicorn keeps its socket open until every call in flight (detached ones too) has
finished. So a new call during the drain is *accepted* and answered 503 "Timed out - server
too busy" with ``Retry-After: 15`` (not a refused connection), ``/health`` answers 503
"shutting down", ``/metrics`` is still served; once the last call is done the socket closes
(new connections are refused) and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tests.lb.conftest import (
    BUSY_BODY,
    JSON_ERROR,
    Process,
    Processes,
    eventually,
    get_metrics,
    totals,
    wait_active,
)

SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])


@pytest.fixture(scope="module")
def runner(module_processes: Processes) -> Process:
    """One runner process shared by the module's load balancers."""
    return module_processes.runner()


async def wait_gate_closed(client: httpx.AsyncClient) -> None:
    """Wait until the load balancer's /health answers 503 (it is draining)."""

    async def closed() -> bool:
        return (await client.get("/health")).status_code == 503

    await eventually(closed, what="the gate closed")


class TestDrain:
    @SIGNALS
    async def test_in_flight_finishes_new_calls_get_503_exit_0(
        self, processes: Processes, runner: Process, signum: int
    ) -> None:
        """The call in flight completes with 200, a new call gets 503, the process exits 0."""
        lb = processes.lb([runner.address], log_level="info")
        async with (
            httpx.AsyncClient(base_url=lb.address, timeout=10) as client,
            httpx.AsyncClient(base_url=lb.address, timeout=10) as other,
        ):
            assert (await other.get("/health")).status_code == 200
            in_flight = asyncio.create_task(client.post("/invoke/slow", content=b"1"))
            await wait_active([runner.address], 1)
            lb.signal(signum)
            await wait_gate_closed(other)
            health = await other.get("/health")
            assert health.content == b'{"message":"shutting down"}\n'
            assert health.headers["content-type"] == JSON_ERROR
            refused = await other.post("/invoke/echo", content=b"x")
            assert refused.status_code == 503
            assert refused.content == BUSY_BODY
            assert refused.headers["retry-after"] == "15"
            assert len(refused.headers["fn-call-id"]) == 26
            metrics = await get_metrics(other)
            assert (metrics("fn_calls_total"), metrics("fn_server_busy_total")) == (2, 1)
            assert metrics("fn_running") == 1
            assert lb.popen.poll() is None  # still draining
            response = await in_flight
            assert (response.status_code, response.content) == (200, b"slept 1s")
        assert await lb.wait() == 0
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=lb.address, timeout=5) as client:
                await client.post("/invoke/echo", content=b"x")
        assert "Draining: new calls get 503" in lb.stderr()
        assert "Traceback" not in lb.stderr()

    @SIGNALS
    async def test_idle_load_balancer_exits_at_once(
        self, processes: Processes, runner: Process, signum: int
    ) -> None:
        """With no call in flight, the process exits 0 at once, not after its drain timeout."""
        lb = processes.lb([runner.address])
        start = time.monotonic()
        lb.signal(signum)
        assert await lb.wait() == 0
        # "At once" against the 60 s drain timeout: well under it, with room for a loaded
        # machine (a second and a half was not, under a parallel suite).
        assert time.monotonic() - start < 10

    async def test_detached_call_in_flight_delays_the_exit(
        self, processes: Processes, runner: Process
    ) -> None:
        """A detached call acknowledged before SIGTERM still runs to its end before the exit."""
        lb = processes.lb([runner.address])
        before = await totals([runner.address])
        async with httpx.AsyncClient(base_url=lb.address, timeout=10) as client:
            response = await client.post(
                "/invoke/slow", content=b"0.8", headers={"Fn-Invoke-Type": "detached"}
            )
        assert response.status_code == 202
        acknowledged = time.monotonic()
        lb.signal(signal.SIGTERM)
        assert await lb.wait() == 0
        assert time.monotonic() - acknowledged >= 0.6
        received, handled, active = await totals([runner.address])
        assert (received, handled, active) == (before[0] + 1, before[1] + 1, 0)

    async def test_second_signal_stops_at_once(self, processes: Processes, runner: Process) -> None:
        """A second signal during the drain stops the process at once and cancels the call."""
        lb = processes.lb([runner.address])
        before = await totals([runner.address])
        async with (
            httpx.AsyncClient(base_url=lb.address, timeout=10) as client,
            httpx.AsyncClient(base_url=lb.address, timeout=10) as other,
        ):
            in_flight = asyncio.create_task(client.post("/invoke/slow", content=b"3"))
            await wait_active([runner.address], 1)
            lb.signal(signal.SIGTERM)
            await wait_gate_closed(other)
            start = time.monotonic()
            lb.signal(signal.SIGTERM)
            try:
                response = await in_flight
            except httpx.RemoteProtocolError:
                outcome: object = "connection dropped"
            else:
                outcome = (response.status_code, response.content)
            # Observed on Python 3.11: the request task is cancelled as the event loop ends,
            # and uvicorn answers its own plain-text 500 (not Fn's JSON), logging the
            # CancelledError's traceback ("Exception in ASGI application").
            assert outcome in [(500, b"Internal Server Error"), "connection dropped"]
        assert await lb.wait() == 0
        # "At once" against the 60 s drain timeout: well under it, with room for a loaded
        # machine (a second and a half was not, under a parallel suite).
        assert time.monotonic() - start < 10
        await wait_active([runner.address], 0)  # the runner stopped the function too
        assert time.monotonic() - start < 2.5
        assert (await totals([runner.address]))[1] == before[1] + 1
