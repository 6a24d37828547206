"""GrpcRunner.try_exec against every row of the outcome table (spec 4), over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import (
    APIError,
    BufferedCall,
    BufferedResponse,
    Call,
    FuncError,
    GrpcRunner,
    ResponseTooLargeError,
    RunnerBusyError,
    RunnerClosedError,
    RunnerConnectionError,
    RunnerProtocolError,
    RunnerUnavailableError,
)
from runnerpool._context import request_id
from runnerpool.runner import Capacity
from tests.rpc.conftest import StartRunner, StartScripted, free_port


def call(image: str, body: bytes = b"", **model: object) -> BufferedCall:
    """A call of an example function."""
    return BufferedCall(Call(id="c1", fn_id="f1", image=image, timeout=30, **model), body=body)  # type: ignore[arg-type]


class TestRealRunner:
    async def test_success(self, start_runner: StartRunner) -> None:
        """Finished(success) then EOF: returns; headers, status and body reach the writer."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        echo = call("echo", b"hello", headers={"Content-Type": ["text/plain"]})
        await runner.try_exec(echo)
        assert echo.response_writer.status_code == 200
        assert ("Content-Type", "text/plain") in echo.response_writer.headers
        assert bytes(echo.response_writer.body) == b"hello"
        assert echo.user_execution_time is not None
        assert echo.user_execution_time > 0
        # The transport reports on the call; the load balancer's agent records the metrics.
        assert echo.runner_address == server.address
        assert echo.runner_timings is not None
        assert echo.runner_timings.execution_duration == echo.model.execution_duration > 0
        await runner.aclose()

    async def test_status_and_every_header(self, start_runner: StartRunner) -> None:
        """A function's status and all its headers travel in result_start."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        result = call("test/headers")
        await runner.try_exec(result)
        assert result.response_writer.status_code == 201
        assert sorted(result.response_writer.headers) == [("X-One", "1"), ("X-Two", "2")]
        await runner.aclose()

    async def test_large_body_both_ways(self, start_runner: StartRunner) -> None:
        """A 1 MB response streams back whole, in frames, to the writer."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        big = call("test/big", b"1048576")
        await runner.try_exec(big)
        assert bytes(big.response_writer.body) == b"x" * 1048576
        echo = call("echo", bytes(range(256)) * 4000)
        await runner.try_exec(echo)
        assert bytes(echo.response_writer.body) == bytes(range(256)) * 4000
        await runner.aclose()

    async def test_nack(self, start_runner: StartRunner) -> None:
        """Finished with errorCode 503 (the runner is full): RunnerBusyError, not placed."""
        server = await start_runner(capacity=Capacity(memory_mb=128))
        runner = GrpcRunner(server.address)
        running = asyncio.create_task(runner.try_exec(call("slow", b"0.3", memory=128)))
        await asyncio.sleep(0.1)
        with pytest.raises(RunnerBusyError, match="Timed out - server too busy"):
            await runner.try_exec(call("echo", b"x", memory=64))
        await running
        status = await runner.status()
        assert (status.requests_received, status.requests_handled) == (2, 1)
        await runner.aclose()

    async def test_never_fits(self, start_runner: StartRunner) -> None:
        """A call too big for the runner: committed APIError 400, not a NACK."""
        server = await start_runner(capacity=Capacity(memory_mb=128))
        runner = GrpcRunner(server.address)
        with pytest.raises(APIError) as info:
            await runner.try_exec(call("echo", memory=1024))
        assert (info.value.status_code, info.value.message) == (
            400,
            "Requested CPU/Memory cannot be allocated",
        )
        assert not isinstance(info.value, FuncError)
        await runner.aclose()

    @pytest.mark.parametrize(
        ("image", "kind", "code", "message"),
        [
            ("test/user-error", FuncError, 400, "bad input"),
            ("fail", FuncError, 502, "function failed"),
            ("test/service-error", APIError, 500, "service unavailable"),
        ],
    )
    async def test_failed_call(
        self, start_runner: StartRunner, image: str, kind: type, code: int, message: str
    ) -> None:
        """Finished with another code: APIError with it, a FuncError when errorUser."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        with pytest.raises(APIError) as info:
            await runner.try_exec(call(image))
        assert type(info.value) is kind
        assert (info.value.status_code, info.value.message) == (code, message)
        await runner.aclose()

    async def test_short_write(self, start_runner: StartRunner) -> None:
        """The writer refusing data is a committed error (the response is too large)."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        big = call("test/big", b"100000")
        big.response_writer = BufferedResponse(max_size=50_000)
        with pytest.raises(ResponseTooLargeError):
            await runner.try_exec(big)
        await runner.aclose()

    async def test_deadline_cancels_the_call_on_the_runner(self, start_runner: StartRunner) -> None:
        """Cancelling try_exec (the client's deadline) ends the call on the runner too."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await runner.try_exec(call("slow", b"5"))
        for _ in range(50):
            if (await runner.status()).active_request_count == 0:
                break
            await asyncio.sleep(0.02)
        assert (await runner.status()).active_request_count == 0
        await runner.aclose()

    async def test_closed_runner(self, start_runner: StartRunner) -> None:
        """A closed runner raises RunnerClosedError: not placed."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        await runner.aclose()
        with pytest.raises(RunnerClosedError, match="Runner is closed"):
            await runner.try_exec(call("echo"))
        assert (await server.service.status()).requests_received == 0

    async def test_close_lets_calls_finish(self, start_runner: StartRunner) -> None:
        """close() waits for the calls in flight, which succeed."""
        server = await start_runner()
        runner = GrpcRunner(server.address)
        slow = call("slow", b"0.2")
        task = asyncio.create_task(runner.try_exec(slow))
        await asyncio.sleep(0.05)
        await runner.aclose()
        assert task.done()
        await task
        assert bytes(slow.response_writer.body) == b"slept 0.2s"

    async def test_unreachable(self) -> None:
        """Nothing listening: RunnerUnavailableError, not placed."""
        runner = GrpcRunner(f"127.0.0.1:{await free_port()}")
        with pytest.raises(RunnerUnavailableError):
            await runner.try_exec(call("echo"))
        with pytest.raises(RunnerUnavailableError):
            await runner.status()
        await runner.aclose()

    def test_bad_address(self) -> None:
        """An address without a port is refused when the runner is made."""
        with pytest.raises(ValueError, match="not host:port"):
            GrpcRunner("localhost")


class TestMisbehavingRunner:
    async def test_stream_ends_with_status_503(self, start_scripted: StartScripted) -> None:
        """A stream ending with the non-standard gRPC status 503 is a NACK."""
        address, _ = await start_scripted("status-503")
        runner = GrpcRunner(address)
        with pytest.raises(RunnerBusyError):
            await runner.try_exec(call("any"))
        await runner.aclose()

    async def test_status_error_after_try_is_committed(self, start_scripted: StartScripted) -> None:
        """A gRPC error on receive (Internal) after the TryCall: committed, not placed."""
        address, _ = await start_scripted("internal")
        runner = GrpcRunner(address)
        with pytest.raises(RunnerConnectionError) as info:
            await runner.try_exec(call("any"))
        assert info.value.grpc_status == 13
        await runner.aclose()

    async def test_unavailable_after_try_is_committed(self, start_scripted: StartScripted) -> None:
        """Unavailable after the TryCall was sent is committed (Fn does not retry it)."""
        address, _ = await start_scripted("unavailable")
        runner = GrpcRunner(address)
        with pytest.raises(RunnerConnectionError) as info:
            await runner.try_exec(call("any"))
        assert info.value.grpc_status == 14
        await runner.aclose()

    async def test_eof_before_finished(self, start_scripted: StartScripted) -> None:
        """A stream that ends without CallFinished: committed protocol error 'EOF'."""
        address, _ = await start_scripted("eof")
        runner = GrpcRunner(address)
        with pytest.raises(RunnerProtocolError, match=r"^EOF$"):
            await runner.try_exec(call("any"))
        await runner.aclose()

    async def test_message_after_finished(self, start_scripted: StartScripted) -> None:
        """Any message after CallFinished: committed 'Purerunner missing EOF response'."""
        address, _ = await start_scripted("after-finished")
        runner = GrpcRunner(address)
        with pytest.raises(RunnerProtocolError, match="Purerunner missing EOF response"):
            await runner.try_exec(call("any"))
        await runner.aclose()

    async def test_framing_and_metadata(self, start_scripted: StartScripted) -> None:
        """The TryCall carries the model, slot and extensions; the body comes in 10 KiB frames."""
        address, handler = await start_scripted("record")
        runner = GrpcRunner(address)
        sent = call("img:1", bytes(25600))
        sent.slot_hash_id = "abcd"
        sent.extensions = {"FN_CHEESE": "Tete de Moine"}
        token = request_id.set("req-7")
        try:
            await runner.try_exec(sent)
        finally:
            request_id.reset(token)
        try_call = getattr(handler.received[0], "try")
        assert Call.from_json(try_call.models_call_json) == sent.model
        assert (try_call.slot_hash_id, dict(try_call.extensions)) == (
            "abcd",
            {"FN_CHEESE": "Tete de Moine"},
        )
        frames = [(len(m.data.data), m.data.eof) for m in handler.received[1:]]
        assert frames == [(10240, False), (10240, False), (5120, False), (0, True)]
        assert handler.metadata["fn_request_id"] == "req-7"
        await runner.aclose()

    async def test_every_attempt_sends_the_whole_body(self, start_scripted: StartScripted) -> None:
        """Two attempts of one call each send the full body from its start."""
        address, handler = await start_scripted("record")
        runner = GrpcRunner(address)
        sent = call("img:1", b"0123456789" * 3000)
        await runner.try_exec(sent)
        first = b"".join(m.data.data for m in handler.received[1:])
        handler.received.clear()
        await runner.try_exec(sent)
        second = b"".join(m.data.data for m in handler.received[1:])
        assert first == second == sent.body
        await runner.aclose()

    async def test_status_error(self, start_scripted: StartScripted) -> None:
        """A runner whose Status fails gives RunnerConnectionError with the gRPC status."""
        address, _ = await start_scripted("record")
        runner = GrpcRunner(address)
        with pytest.raises(RunnerConnectionError) as info:
            await runner.status()
        assert info.value.grpc_status == 12  # UNIMPLEMENTED
        await runner.aclose()
