"""The load balancer's runner status poller, for the least-loaded placer, on real runners."""

from __future__ import annotations

import asyncio
import socket

from runnerpool import BufferedCall, Call, LeastLoadedPlacer, StaticRunnerPool
from runnerpool.lb._status_poll import StatusPoller
from tests.rpc.conftest import StartRunner, start_runner

__all__ = ["start_runner"]  # the fixture, used below by name


def free_address() -> str:
    """A loopback address where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_poll_records_each_runners_active_calls(start_runner: StartRunner) -> None:
    """A runner busy with another LB's call ranks as loaded, until its status goes stale.

    An unreachable runner keeps no status: the placer ranks it by its own count.
    """
    busy, idle = await start_runner(), await start_runner()
    gone = free_address()
    pool = StaticRunnerPool([busy.address, idle.address, gone])
    placer = LeastLoadedPlacer(status_max_age=1.0)
    poller = StatusPoller(placer, pool)
    # Another load balancer's call, which this placer never counted itself.
    other_lb = StaticRunnerPool([busy.address])
    [runner] = await other_lb.runners(BufferedCall(Call(id="x")))
    slow = BufferedCall(Call(id="slow", image="slow", timeout=10), body=b"1")
    running = asyncio.create_task(runner.try_exec(slow))
    try:
        async with asyncio.timeout(5):
            while (await busy.service.status()).active_request_count == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await poller.poll_once()
        assert placer.runner_load(busy.address) == 1
        assert placer.runner_load(idle.address) == 0
        assert placer.runner_load(gone) == 0
        await asyncio.sleep(1.1)
        assert placer.runner_load(busy.address) == 0
    finally:
        await running
        await other_lb.aclose()
        await pool.aclose()


async def test_background_polling_starts_and_stops(start_runner: StartRunner) -> None:
    """Started, the poller polls every interval; closed, it stops."""
    server = await start_runner()
    pool = StaticRunnerPool([server.address])
    placer = LeastLoadedPlacer(status_max_age=0.2)
    poller = StatusPoller(placer, pool)
    assert poller.interval == 0.1
    poller.start()
    try:
        async with asyncio.timeout(5):
            while poller.rounds < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await poller.aclose()
        await pool.aclose()
    rounds = poller.rounds
    await asyncio.sleep(0.3)
    assert poller.rounds == rounds
