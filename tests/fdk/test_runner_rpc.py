"""An FDK runner over the runner protocol: calls, status and StreamLogs on a real gRPC server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from grpclib.client import Channel

from runnerpool import APIError, BufferedCall, Call, GrpcRunner
from runnerpool.fdk import FdkExecutor, LogBook
from runnerpool.fdk._output import OutputSink
from runnerpool.rpc._proto import runner_pb2 as pb
from runnerpool.rpc._proto.runner_grpc import RunnerProtocolStub
from runnerpool.runner import RunnerServer, RunnerService


@pytest.fixture
async def server(make_executor: Callable[..., FdkExecutor]) -> AsyncIterator[RunnerServer]:
    """A runner serving the test bundles, its executor also streaming the functions' logs."""
    executor = make_executor()
    service = RunnerService(executor, log_streamer=executor)
    server = RunnerServer(service, host="127.0.0.1", port=0, drain_timeout=5)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def test_call_status_and_logs(server: RunnerServer) -> None:
    """A call runs in an FDK process, which status counts; its log line is streamed.

    The line comes under the call's id, as stderr.
    """
    runner = GrpcRunner(server.address)
    try:
        call = BufferedCall(
            Call(id="call-logs", app_id="a", fn_id="echo", image="echo", timeout=10, memory=64),
            body=b"four",
        )
        await runner.try_exec(call)
        assert (call.response_writer.status_code, bytes(call.response_writer.body)) == (
            200,
            b"four",
        )
        status = await runner.status()
        assert status.custom_status["processes"] == "1"
    finally:
        await runner.aclose()
    host, port = server.address.rsplit(":", 1)
    channel = Channel(host, int(port))
    try:
        stub = RunnerProtocolStub(channel)
        async with stub.StreamLogs.open() as stream:
            await stream.send_message(pb.LogRequestMsg(start=pb.LogRequestMsg.Start()))
            batch = await stream.recv_message()
            await stream.cancel()
    finally:
        channel.close()
    assert batch is not None
    [container] = batch.data
    assert (container.applicationId, container.functionId) == ("a", "echo")
    assert container.containerId.startswith("fdk-")
    [request] = container.data
    assert request.requestId == "call-logs"
    assert any(
        b"echo got 4 bytes" in line.data
        and line.source == pb.LogResponseMsg.Container.Request.Line.STDERR
        for line in request.data
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": ["a\r\nX-Injected: 1"]},
        {"X-Evil": ["a\nb"]},
        {"X-Evil": ["a\x00b"]},
        {"X-Evil: 1\r\nX-More": ["b"]},
    ],
)
async def test_a_header_with_a_line_break_is_refused_and_never_written(
    server: RunnerServer, headers: dict[str, list[str]]
) -> None:
    """A header that would break the request's framing on the function's socket gets 400.

    It is refused before any process is started (none is written to), and the runner goes on
    serving: the next call runs.
    """
    async with GrpcRunner(server.address) as runner:
        bad = BufferedCall(
            Call(id="bad", app_id="a", fn_id="echo", image="echo", timeout=10, headers=headers),
            body=b"x",
        )
        with pytest.raises(APIError, match="CR, LF") as raised:
            await runner.try_exec(bad)
        assert raised.value.status_code == 400
        assert (await runner.status()).custom_status["processes"] == "0"
        good = BufferedCall(
            Call(id="good", app_id="a", fn_id="echo", image="echo", timeout=10, memory=64),
            body=b"ok",
        )
        await runner.try_exec(good)
        assert bytes(good.response_writer.body) == b"ok"


def test_log_book_bounds_what_waits_for_a_collector() -> None:
    """Without a collector, a call keeps at most max_lines lines, and the book max_calls calls."""
    book = LogBook(max_calls=2, max_lines=3)

    class Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    sink = OutputSink(book, "a", "f", "p")
    for request in ("r1", "r2", "r3"):
        sink.begin(request, Sink())
        for n in range(5):
            sink.write(f"{request} line {n}\n".encode(), "stdout")
        sink.end()
    entries = list(book._entries)
    assert [entry.request_id for entry in entries] == ["r2", "r3"]
    assert [len(entry.lines) for entry in entries] == [3, 3]
