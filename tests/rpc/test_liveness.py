"""Connections to runners: verified connect, keepalive on a silent peer, no wait for a stream.

A TCP proxy on 127.0.0.1 sits between the client and a real runner server; "freezing" it stops
forwarding in both directions while keeping both sockets open, as a stopped process or a
partition does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from runnerpool import (
    BufferedCall,
    Call,
    GrpcRunner,
    Keepalive,
    RunnerBusyError,
    RunnerConnectionError,
    RunnerUnavailableError,
)
from runnerpool._sockets import listening_socket
from runnerpool.runner import RunnerService
from tests.rpc.conftest import StartRunner

#: Short keepalive, so that tests find a silent peer in about a second.
FAST = Keepalive(interval=0.2, timeout=0.6, connect_timeout=0.5)


class Proxy:
    """Forwards TCP connections to ``target``, until frozen (then it forwards nothing)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        sock = listening_socket("127.0.0.1", 0)
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = sock.getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    if self.frozen.is_set():
                        await asyncio.Event().wait()  # hold the data, forever
                    sink.write(data)
                    await sink.drain()

        tasks = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (writer, up_writer):
            w.close()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says anything: a frozen runner's kernel."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    sock = listening_socket("127.0.0.1", 0)
    server = await asyncio.start_server(hold, sock=sock)
    yield sock.getsockname()[1]
    for writer in held:
        writer.close()
    server.close()


async def until_active(service: RunnerService, count: int) -> None:
    """Wait (at most 10 s) until ``count`` calls run on the service."""
    for _ in range(500):
        if (await service.status()).active_request_count >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} calls never ran at once")


def slow_call(seconds: float) -> BufferedCall:
    """A call of the example ``slow`` function."""
    return BufferedCall(
        Call(id="c", fn_id="slow", image="slow", timeout=60, memory=1), body=str(seconds).encode()
    )


class TestConnect:
    async def test_a_peer_that_never_speaks_is_unreachable(self, silent_server: int) -> None:
        """TCP accepted but no HTTP/2 frame within the connect timeout: not placed, in time."""
        runner = GrpcRunner(f"127.0.0.1:{silent_server}", keepalive=FAST)
        start = time.monotonic()
        with pytest.raises(RunnerUnavailableError):
            await runner.try_exec(slow_call(0))
        assert time.monotonic() - start < 5
        # Within the hold after the failure, the next call is refused without waiting.
        with pytest.raises(RunnerUnavailableError, match="could not connect just now"):
            await runner.try_exec(slow_call(0))
        await runner.aclose()


class TestKeepalive:
    async def test_silent_connection_ends_committed_calls(self, start_runner: StartRunner) -> None:
        """A connection that falls silent mid-call is aborted: every call on it ends committed."""
        server = await start_runner()
        proxy = Proxy(server.port)
        await proxy.start()
        runner = GrpcRunner(f"127.0.0.1:{proxy.port}", keepalive=FAST)
        try:
            calls = [asyncio.create_task(runner.try_exec(slow_call(30))) for _ in range(3)]
            await until_active(server.service, 3)
            proxy.frozen.set()
            start = time.monotonic()
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, RunnerConnectionError) for r in results), results
            assert time.monotonic() - start < 5
            assert runner.connections == 0
        finally:
            await runner.aclose()
            await proxy.aclose()

    async def test_idle_connection_pinged_stays_up(self, start_runner: StartRunner) -> None:
        """A healthy runner answers the PINGs: a long quiet call on it is not cut."""
        server = await start_runner()
        runner = GrpcRunner(server.address, keepalive=FAST)
        call = slow_call(1.5)  # several keepalive periods with no frame from the call
        await runner.try_exec(call)
        assert bytes(call.response_writer.body) == b"slept 1.5s"
        await runner.aclose()


class TestNoHiddenQueue:
    async def test_calls_beyond_one_connection_open_another(
        self, start_runner: StartRunner
    ) -> None:
        """150 concurrent calls run at once on two connections, not 100 then 50."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        calls = [asyncio.create_task(runner.try_exec(slow_call(1))) for _ in range(150)]
        peak = 0
        for _ in range(500):  # bounded: 10 s; the calls sleep 1 s
            if all(c.done() for c in calls):
                break
            peak = max(peak, (await server.service.status()).active_request_count)
            await asyncio.sleep(0.02)
        await asyncio.gather(*calls)
        assert peak == 150
        await runner.aclose()

    async def test_every_connection_full_is_a_refusal(self, start_runner: StartRunner) -> None:
        """With one connection allowed and full, the next call is refused as busy at once."""
        server = await start_runner()
        runner = GrpcRunner(server.address, max_connections=1)
        calls = [asyncio.create_task(runner.try_exec(slow_call(1))) for _ in range(100)]
        await until_active(server.service, 100)
        with pytest.raises(RunnerBusyError, match="connections are full"):
            await runner.try_exec(slow_call(0))
        await asyncio.gather(*calls)
        await runner.aclose()
