"""A runner reached over gRPC: the port of Fn's ``runner_client.go`` (``gRPCRunner``).

``try_exec`` follows Fn's contract to the letter. Nothing is placed until the ``TryCall`` was
sent: a closed runner, a failed connection or a stream the runner refused to open raise
:class:`~runnerpool.NotPlacedError`. Once the ``TryCall`` is sent the call is committed,
unless the runner answers with the 503 NACK. The body streams in frames of at most
10 240 bytes from a fresh ``request_body()``, while the response streams into the call's
response writer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import TYPE_CHECKING, cast

from google.protobuf import empty_pb2
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from .. import metrics
from .._context import request_id, runner_address
from .._errors import (
    RunnerBusyError,
    RunnerClosedError,
    RunnerConnectionError,
    RunnerProtocolError,
    RunnerUnavailableError,
)
from .._interfaces import Runner
from ._codec import error_from_finished, frames, seconds, status_from_pb, try_message
from ._proto import runner_pb2 as pb
from ._proto.runner_grpc import RunnerProtocolStub

if TYPE_CHECKING:
    from grpclib.client import Stream

    from .._interfaces import RunnerCall
    from .._status import RunnerStatus

__all__ = ["GrpcRunner", "split_address"]

logger = logging.getLogger(__name__)

#: grpclib cannot represent Fn's non-standard status 503; it reports it in this message.
_RAW_STATUS = re.compile(r"Invalid grpc-status: '(\d+)'")

#: Errors that mean the runner could not be reached at all.
_UNREACHABLE = (OSError, StreamTerminatedError, asyncio.TimeoutError)


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into host and port.

    Raises:
        ValueError: If the address has no valid port.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"runner address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def _record_runner_latencies(finished: pb.CallFinished) -> None:
    # Fn's recordFinishStats: the runner's own timings, in milliseconds, when it gave them.
    views = metrics.lb_agent_views()
    if views is None:
        return
    tags = views.tags()
    if finished.schedulerDuration:
        views.runner_sched_latency.record(tags, finished.schedulerDuration // 1_000_000)
    if finished.executionDuration:
        views.runner_exec_latency.record(tags, finished.executionDuration // 1_000_000)


def _status_number(error: GRPCError) -> int:
    match = _RAW_STATUS.fullmatch(error.message or "")
    return int(match.group(1)) if match else error.status.value


class GrpcRunner(Runner):
    """A runner reached over gRPC with Fn's runner protocol.

    Creating one never fails for an unreachable address: the connection is made on first
    use, and an unreachable runner is simply not placed on.

    Args:
        address: ``host:port`` of the runner's gRPC server.
        ssl: TLS for the connection (see :func:`~runnerpool.client_tls`); plain TCP if None.
        connect_timeout: Seconds to wait for a connection before the runner counts as
            unreachable (Fn uses 0.1 s; a busy host needs more).

    Raises:
        ValueError: If the address is not ``host:port``.
    """

    def __init__(
        self, address: str, *, ssl: ssl.SSLContext | None = None, connect_timeout: float = 1.0
    ) -> None:
        host, port = split_address(address)
        self._address = address
        self._channel = Channel(host, port, ssl=ssl)
        self._stub = RunnerProtocolStub(self._channel)
        self._connect_timeout = connect_timeout
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def address(self) -> str:
        """The runner's ``host:port``."""
        return self._address

    def __repr__(self) -> str:
        return f"GrpcRunner({self._address!r})"

    async def try_exec(self, call: RunnerCall) -> None:
        """Offer the call to the runner and, if it takes it, stream it to the end.

        Raises:
            RunnerClosedError: If this runner was closed.
            RunnerUnavailableError: If the runner could not be reached.
            RunnerBusyError: If the runner refused with the 503 NACK.
            APIError: If the call failed on the runner (a FuncError for the user's fault).
            RunnerConnectionError: If the connection failed after the runner took the call.
            RunnerProtocolError: If the runner broke the protocol after taking the call.
        """
        if self._closed:
            raise RunnerClosedError
        # An unencodable call can run nowhere: committed, as Fn does.
        try_call = pb.TryCall(
            models_call_json=call.model.to_json(),
            slot_hash_id=call.slot_hash_id,
            extensions=call.extensions,
        )
        rid = request_id.get()
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._connect()
            async with self._stub.Engage.open(
                metadata=None if rid is None else {"fn_request_id": rid}
            ) as stream:
                try:
                    await stream.send_message(try_message(try_call))
                except _UNREACHABLE as exc:
                    raise RunnerUnavailableError(f"{self._address}: {exc!r}") from exc
                except GRPCError as exc:
                    if exc.status is Status.UNAVAILABLE:
                        raise RunnerUnavailableError(f"{self._address}: {exc}") from exc
                    raise RunnerConnectionError(
                        f"{self._address}: {exc}", grpc_status=exc.status.value
                    ) from exc
                # COMMITTED: the runner has the call. From here on, only its explicit
                # NACK makes the call retriable elsewhere.
                runner_address.set(self._address)
                sender = asyncio.create_task(self._send_body(stream, call))
                try:
                    await self._receive(stream, call)
                finally:
                    if not sender.done():
                        sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
        except GRPCError as exc:
            number = _status_number(exc)
            if number == 503:
                raise RunnerBusyError(exc.message or "Timed out - server too busy") from exc
            raise RunnerConnectionError(
                f"{self._address}: {exc.message or exc.status.name}", grpc_status=number
            ) from exc
        except StreamTerminatedError as exc:
            raise RunnerConnectionError(f"{self._address}: {exc}") from exc
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _connect(self) -> None:
        # Connected already (the usual case): no timeout to arm. grpclib keeps the state in
        # a private attribute; without it, every call takes the slower path below.
        if getattr(self._channel, "_connected", False):
            return
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._channel.__connect__()
        except _UNREACHABLE as exc:
            raise RunnerUnavailableError(f"{self._address}: {exc!r}") from exc

    async def _send_body(
        self, stream: Stream[pb.ClientMsg, pb.RunnerMsg], call: RunnerCall
    ) -> None:
        try:
            # The eof frame also ends the request stream (end=True): one HTTP/2 frame less
            # than sending it and then ending the stream.
            pending: pb.ClientMsg | None = None
            async for frame in frames(call.request_body()):
                if pending is not None:
                    await stream.send_message(pending)
                pending = frame
            await stream.send_message(cast("pb.ClientMsg", pending), end=True)
        except (GRPCError, StreamTerminatedError, OSError) as exc:
            # The runner may have answered (a NACK, an error) before reading the body.
            logger.debug("Body not fully sent to %s: %r", self._address, exc)

    async def _receive(self, stream: Stream[pb.ClientMsg, pb.RunnerMsg], call: RunnerCall) -> None:
        writer = call.response_writer
        finished: pb.CallFinished | None = None
        while (message := await stream.recv_message()) is not None:
            if finished is not None:
                raise RunnerProtocolError("Purerunner missing EOF response")
            kind = message.WhichOneof("body")
            if kind == "result_start":
                http = message.result_start.http
                for header in http.headers:
                    writer.add_header(header.key, header.value)
                if http.status_code > 0:
                    writer.write_header(http.status_code)
            elif kind == "data":
                await writer.write(message.data.data)
            elif kind == "finished":
                finished = message.finished
                if finished.executionDuration:
                    call.add_user_execution_time(seconds(finished.executionDuration))
                _record_runner_latencies(finished)
            else:
                logger.info("Ignoring an unknown message from runner %s", self._address)
        if finished is None:
            raise RunnerProtocolError("EOF")
        error = error_from_finished(finished)
        if error is not None:
            raise error

    async def status(self) -> RunnerStatus:
        """Ask the runner for its status (the unary ``Status`` call).

        Raises:
            RunnerUnavailableError: If the runner could not be reached.
            RunnerConnectionError: If the call failed.
        """
        rid = request_id.get()
        await self._connect()
        try:
            reply = await self._stub.Status(
                empty_pb2.Empty(), metadata=None if rid is None else {"fn_request_id": rid}
            )
        except GRPCError as exc:
            raise RunnerConnectionError(
                f"{self._address}: {exc.message or exc.status.name}",
                grpc_status=_status_number(exc),
            ) from exc
        except _UNREACHABLE as exc:
            raise RunnerUnavailableError(f"{self._address}: {exc!r}") from exc
        return status_from_pb(reply)

    async def close(self) -> None:
        """Refuse new calls, let the calls in flight finish, then close the connection."""
        self._closed = True
        await self._idle.wait()
        self._channel.close()
