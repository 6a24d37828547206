"""Runners, pools, servers and executors close under async with, and closing twice is harmless."""

from __future__ import annotations

import pytest

from runnerpool import (
    BufferedCall,
    Call,
    GrpcRunner,
    RunnerClosedError,
    RunnerUnavailableError,
    StaticRunnerPool,
)
from runnerpool.runner import InProcessExecutor, RunnerServer, RunnerService

from .conftest import TEST_FUNCTIONS, StartRunner


def echo(body: bytes = b"hi") -> BufferedCall:
    """A call of the echo example function."""
    return BufferedCall(Call(id="c1", fn_id="echo", image="echo", timeout=30), body=body)


class TestGrpcRunner:
    async def test_async_with_closes(self, start_runner: StartRunner) -> None:
        """A GrpcRunner runs a call inside async with, then refuses; closing again is harmless."""
        server = await start_runner()
        async with GrpcRunner(server.address) as runner:
            call = echo()
            await runner.try_exec(call)
            assert bytes(call.response_writer.body) == b"hi"
        with pytest.raises(RunnerClosedError):
            await runner.try_exec(echo())
        await runner.aclose()

    async def test_close_is_a_deprecated_alias(self, start_runner: StartRunner) -> None:
        """close() still closes the runner, with a DeprecationWarning."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        await runner.try_exec(echo())
        with pytest.deprecated_call(match=r"GrpcRunner\.close\(\) is deprecated"):
            await runner.close()
        with pytest.raises(RunnerClosedError):
            await runner.try_exec(echo())


class TestStaticRunnerPool:
    async def test_async_with_closes_every_runner(self, start_runner: StartRunner) -> None:
        """The pool's runners run calls inside async with and are closed after it; twice is fine."""
        server = await start_runner()
        async with StaticRunnerPool([server.address]) as pool:
            [runner] = await pool.runners(echo())
            await runner.try_exec(echo())
        with pytest.raises(RunnerClosedError):
            await runner.try_exec(echo())
        await pool.aclose()

    async def test_shutdown_is_a_deprecated_alias(self, start_runner: StartRunner) -> None:
        """shutdown() still closes the pool's runners, with a DeprecationWarning."""
        server = await start_runner()
        pool = StaticRunnerPool([server.address])
        [runner] = await pool.runners(echo())
        with pytest.deprecated_call(match=r"StaticRunnerPool\.shutdown\(\) is deprecated"):
            await pool.shutdown()
        with pytest.raises(RunnerClosedError):
            await runner.try_exec(echo())


class TestRunnerServer:
    async def test_async_with_serves_then_closes(self) -> None:
        """A server serves inside async with; after it, a new runner cannot place a call."""
        service = RunnerService(InProcessExecutor(TEST_FUNCTIONS))
        async with (
            RunnerServer(service, host="127.0.0.1", port=0) as server,
            GrpcRunner(server.address) as runner,
        ):
            await runner.try_exec(echo())
        await server.aclose()
        late = GrpcRunner(server.address, connect_timeout=2)
        async with late:
            with pytest.raises(RunnerUnavailableError):
                await late.try_exec(echo())


class TestInProcessExecutor:
    async def test_async_with_closes(self) -> None:
        """The in-process executor supports async with, and closing it twice is harmless."""
        async with InProcessExecutor(TEST_FUNCTIONS) as executor:
            assert isinstance(executor, InProcessExecutor)
        await executor.aclose()
