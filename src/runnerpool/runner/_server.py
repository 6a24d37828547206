"""The runner's gRPC server: :class:`~runnerpool.runner.RunnerService` over grpclib.

This module only adapts the transport (``runnerpool.rpc``, the layer below, which never
imports the runner): the service decides everything. Draining is done by
the service, not by closing the server: new calls get the 503 NACK while calls in flight
finish, and only then does the server close. (Closing a grpclib server cancels the calls in
flight, and a GOAWAY during a call ends the call on grpclib clients.)
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from google.protobuf import json_format
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from .._context import request_id
from .._resource import AsyncResource
from .._sockets import listening_socket
from ..rpc.wire import CorkedServer, ProtocolViolation, RunnerProtocolBase, pb, status_to_pb

if TYPE_CHECKING:
    from google.protobuf import empty_pb2, struct_pb2
    from grpclib.server import Stream

    from ._logs import ContainerLogs
    from ._service import RunnerService

__all__ = ["RunnerServer"]

logger = logging.getLogger(__name__)


class _EngageStream:
    """Adapts a grpclib server stream to the service's ``EngageStream``."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Stream[pb.ClientMsg, pb.RunnerMsg]) -> None:
        self._stream = stream

    async def recv(self) -> pb.ClientMsg | None:
        return await self._stream.recv_message()

    async def send(self, message: pb.RunnerMsg) -> None:
        await self._stream.send_message(message)


class _Handler(RunnerProtocolBase):
    def __init__(self, service: RunnerService) -> None:
        self._service = service

    async def Engage(self, stream: Stream[pb.ClientMsg, pb.RunnerMsg]) -> None:
        rid = stream.metadata.get("fn_request_id") if stream.metadata else None
        token = request_id.set(str(rid) if rid is not None else None)
        try:
            await self._service.engage(_EngageStream(stream))
        except ProtocolViolation as exc:
            raise GRPCError(Status.UNKNOWN, str(exc)) from None
        finally:
            request_id.reset(token)

    async def Status(self, stream: Stream[empty_pb2.Empty, pb.RunnerStatus]) -> None:
        await stream.recv_message()
        await stream.send_message(status_to_pb(await self._service.status()))

    async def Status2(self, stream: Stream[struct_pb2.Struct, pb.RunnerStatus]) -> None:
        request = await stream.recv_message()
        payload = {} if request is None else json_format.MessageToDict(request)
        await stream.send_message(status_to_pb(await self._service.status(payload)))

    async def ConfigureRunner(self, stream: Stream[pb.ConfigMsg, pb.ConfigStatus]) -> None:
        request = await stream.recv_message()
        await self._service.configure({} if request is None else dict(request.config))
        await stream.send_message(pb.ConfigStatus())

    async def StreamLogs(self, stream: Stream[pb.LogRequestMsg, pb.LogResponseMsg]) -> None:
        streamer = self._service.log_streamer
        if streamer is None:
            raise GRPCError(Status.UNKNOWN, "runner not configured with logStreamer")
        first = await stream.recv_message()
        if first is None or first.WhichOneof("body") != "start":
            raise GRPCError(Status.UNKNOWN, "Protocol failure: expected LogRequestMsg_Start")
        async for batch in streamer.stream(dict(first.start.config)):
            await stream.send_message(_log_message(batch))
            # The collector acknowledges each batch (Ack or Ready) before the next one.
            if await stream.recv_message() is None:
                return


def _log_message(batch: Sequence[ContainerLogs]) -> pb.LogResponseMsg:
    source = pb.LogResponseMsg.Container.Request.Line.Source
    return pb.LogResponseMsg(
        data=[
            pb.LogResponseMsg.Container(
                applicationId=container.app_id,
                functionId=container.fn_id,
                containerId=container.container_id,
                data=[
                    pb.LogResponseMsg.Container.Request(
                        requestId=request.request_id,
                        data=[
                            pb.LogResponseMsg.Container.Request.Line(
                                timestamp=line.timestamp_ms,
                                source=source.STDERR if line.source == "stderr" else source.STDOUT,
                                data=line.data,
                            )
                            for line in request.lines
                        ],
                    )
                    for request in container.requests
                ],
            )
            for container in batch
        ]
    )


class RunnerServer(AsyncResource):
    """Serves a :class:`~runnerpool.runner.RunnerService` with Fn's runner protocol.

    Use it as an async context manager, or call :meth:`start` and :meth:`aclose`::

        async with RunnerServer(service, host="127.0.0.1", port=9190) as server:
            await stopped.wait()

    Args:
        service: The runner service.
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one (see :attr:`port`).
        ssl: TLS (see :func:`~runnerpool.server_tls`); plain TCP if None.
        drain_timeout: How long :meth:`aclose` waits for calls in flight before it cancels
            them; ``None`` waits for as long as they run.

    Entering ``async with`` starts the server; leaving it closes it. Closing twice is harmless.
    """

    def __init__(
        self,
        service: RunnerService,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: ssl.SSLContext | None = None,
        drain_timeout: float | None = None,
    ) -> None:
        self.service = service
        self._host = host
        self._port = port
        self._ssl = ssl
        self._drain_timeout = drain_timeout
        # Corked: a response's headers, messages and trailers leave in as few writes as the
        # handler's turns of the event loop allow (issue 16).
        self._server = CorkedServer([_Handler(service)])
        self._bound_port: int | None = None
        self._closed = False

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            RuntimeError: If the server was not started.
        """
        if self._bound_port is None:
            raise RuntimeError("the runner server is not started")
        return self._bound_port

    @property
    def address(self) -> str:
        """``host:port`` to give load balancers."""
        return f"{self._host}:{self.port}"

    async def start(self) -> None:
        """Start listening."""
        sock = listening_socket(self._host, self._port)
        self._bound_port = sock.getsockname()[1]
        await self._server.start(sock=sock, ssl=self._ssl)
        logger.info("Runner listening on %s", self.address)

    async def aclose(self) -> None:
        """Drain, then stop: new calls get the NACK, calls in flight finish, then close."""
        if self._closed:
            return
        self._closed = True
        self.service.start_drain()
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self.service.wait_idle()
        except TimeoutError:
            logger.warning("Drain timed out; cancelling the calls still in flight")
        self._server.close()
        await self._server.wait_closed()
        await self.service.executor.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self
