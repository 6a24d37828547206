"""Real runner servers on 127.0.0.1 (port 0), and a scripted misbehaving one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from google.protobuf import empty_pb2, struct_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from runnerpool import APIError, FuncError
from runnerpool._sockets import listening_socket
from runnerpool.examples import FUNCTIONS
from runnerpool.rpc._proto import runner_pb2 as pb
from runnerpool.rpc._proto.runner_grpc import RunnerProtocolBase
from runnerpool.runner import (
    FunctionRequest,
    FunctionResponse,
    InProcessExecutor,
    RunnerServer,
    RunnerService,
)


async def _big(request: FunctionRequest) -> bytes:
    return b"x" * int(request.body)


async def _user_error(request: FunctionRequest) -> bytes:
    raise FuncError("bad input", status_code=400)


async def _service_error(request: FunctionRequest) -> bytes:
    raise APIError("service unavailable", status_code=500)


async def _headers(request: FunctionRequest) -> FunctionResponse:
    return FunctionResponse(b"", status_code=201, headers={"X-One": "1", "X-Two": "2"})


#: What the test runners run, by image name.
TEST_FUNCTIONS = {
    **FUNCTIONS,
    "test/big": _big,
    "test/user-error": _user_error,
    "test/service-error": _service_error,
    "test/headers": _headers,
}

StartRunner = Callable[..., Awaitable[RunnerServer]]


@pytest.fixture
async def start_runner() -> AsyncIterator[StartRunner]:
    """Start real runner servers (keyword arguments go to RunnerService); all close at the end."""
    servers: list[RunnerServer] = []

    async def start(**service_options: Any) -> RunnerServer:
        service = RunnerService(InProcessExecutor(TEST_FUNCTIONS), **service_options)
        server = RunnerServer(service, host="127.0.0.1", port=0, drain_timeout=5)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose()


class _Raw503:
    """Stands in for grpclib's Status enum, which has no 503: grpclib writes ``value``."""

    value = 503
    name = "SERVER_TOO_BUSY"


class ScriptedRunner(RunnerProtocolBase):
    """A runner that misbehaves on purpose, for the rows of the outcome table a real one avoids.

    Attributes:
        behaviour: What Engage does after reading the TryCall.
        received: Every ClientMsg received, in order.
        metadata: The metadata of the last Engage.
    """

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.received: list[pb.ClientMsg] = []
        self.metadata: dict[str, str] = {}

    async def Engage(self, stream: Stream[pb.ClientMsg, pb.RunnerMsg]) -> None:
        self.metadata = {str(k): str(v) for k, v in (stream.metadata or {}).items()}
        first = await stream.recv_message()
        assert first is not None
        self.received.append(first)
        finished = pb.RunnerMsg(finished=pb.CallFinished(success=True))
        if self.behaviour == "status-503":
            await stream.send_trailing_metadata(
                status=cast(Status, _Raw503()), status_message="Timed out - server too busy"
            )
        elif self.behaviour == "internal":
            raise GRPCError(Status.INTERNAL, "boom")
        elif self.behaviour == "unavailable":
            raise GRPCError(Status.UNAVAILABLE, "going away")
        elif self.behaviour == "eof":
            return
        elif self.behaviour == "after-finished":
            await stream.send_message(finished)
            await stream.send_message(pb.RunnerMsg(data=pb.DataFrame(data=b"late")))
        elif self.behaviour == "record":
            while (message := await stream.recv_message()) is not None:
                self.received.append(message)
                if message.data.eof:
                    break
            await stream.send_message(finished)
        else:  # pragma: no cover - a typo in a test
            raise AssertionError(self.behaviour)

    async def Status(self, stream: Stream[empty_pb2.Empty, pb.RunnerStatus]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)

    async def ConfigureRunner(self, stream: Stream[pb.ConfigMsg, pb.ConfigStatus]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)

    async def StreamLogs(self, stream: Stream[pb.LogRequestMsg, pb.LogResponseMsg]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)

    async def Status2(self, stream: Stream[struct_pb2.Struct, pb.RunnerStatus]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)


StartScripted = Callable[[str], Awaitable[tuple[str, ScriptedRunner]]]


@pytest.fixture
async def start_scripted() -> AsyncIterator[StartScripted]:
    """Start scripted runners; returns (address, handler); all close at the end."""
    servers: list[Server] = []

    async def start(behaviour: str) -> tuple[str, ScriptedRunner]:
        handler = ScriptedRunner(behaviour)
        server = Server([handler])
        sock = listening_socket("127.0.0.1", 0)
        await server.start(sock=sock)
        servers.append(server)
        return f"127.0.0.1:{sock.getsockname()[1]}", handler

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def free_port() -> int:
    """A loopback port with nothing listening on it."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port
