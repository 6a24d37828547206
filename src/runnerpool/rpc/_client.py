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
from time import monotonic
from typing import TYPE_CHECKING, Protocol, cast

from google.protobuf import empty_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from .._call import BufferedCall, RunnerTimings
from .._context import request_id
from .._errors import (
    RunnerBusyError,
    RunnerClosedError,
    RunnerConnectionError,
    RunnerProtocolError,
    RunnerUnavailableError,
)
from .._interfaces import Runner
from .._resource import AsyncResource, warn_renamed
from ._channel import Keepalive, RunnerChannel
from ._codec import (
    body_frames,
    error_from_finished,
    frames,
    seconds,
    status_from_pb,
    try_message,
)
from ._grpclib_private import send_window
from ._proto import runner_pb2 as pb
from ._proto.runner_grpc import RunnerProtocolStub

if TYPE_CHECKING:
    from grpclib.client import Stream

    from .._interfaces import RunnerCall
    from .._status import RunnerStatus

__all__ = ["DEFAULT_MAX_CONNECTIONS", "GrpcRunner", "HealthReport", "split_address"]

logger = logging.getLogger(__name__)

#: grpclib cannot represent Fn's non-standard status 503; it reports it in this message.
_RAW_STATUS = re.compile(r"Invalid grpc-status: '(\d+)'")

#: Connections to one runner at most, by default: 400 calls in flight at h2's default limit
#: of 100 streams per connection.
DEFAULT_MAX_CONNECTIONS = 4

#: A body in memory up to this size is sent from the call's own task when it fits the stream's
#: flow-control window (see ``_inline_frames``); larger ones always stream from a task.
INLINE_BODY_LIMIT = 64 * 1024

#: gRPC's length prefix on every message (1 flag byte, 4 length bytes): flow-controlled too.
_GRPC_PREFIX = 5

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


def _status_number(error: GRPCError) -> int:
    match = _RAW_STATUS.fullmatch(error.message or "")
    return int(match.group(1)) if match else error.status.value


def _inline_frames(
    stream: Stream[pb.ClientMsg, pb.RunnerMsg], call: RunnerCall
) -> list[pb.ClientMsg] | None:
    """The body's frames, when they can be sent now without waiting; else ``None``.

    Sending from the call's own task saves a task per call and joins the body to the
    ``TryCall`` in one write. It is only safe when no send can wait: a runner that answers
    (a NACK) without reading the body would leave a waiting sender, and the call, stuck. So
    only a body held in memory (a :class:`~runnerpool.BufferedCall`'s), no larger than
    :data:`INLINE_BODY_LIMIT`, whose frames fit the stream's flow-control window, on a
    connection that takes writes; anything else streams from a task.
    """
    if not isinstance(call, BufferedCall) or len(call.body) > INLINE_BODY_LIMIT:
        return None
    window = send_window(stream)
    if window is None:
        return None
    framed = body_frames(call.body)
    needed = sum(frame.ByteSize() + _GRPC_PREFIX for frame in framed)
    return framed if needed <= window else None


class HealthReport(Protocol):
    """Where a :class:`GrpcRunner` reports what it sees of its runner's health.

    :class:`~runnerpool.pools.RunnerHealth` is the implementation; a pool gives one to each
    runner.
    """

    @property
    def ejected(self) -> bool:
        """Whether placers should pass over the runner now."""

    def failure(self, reason: str) -> None:
        """Record a connect failure, a dead connection or a transport error."""

    def success(self) -> None:
        """Record that the runner answered."""


class GrpcRunner(AsyncResource, Runner):
    """A runner reached over gRPC with Fn's runner protocol.

    Creating one never fails for an unreachable address: connections are made on first
    use, and an unreachable runner is simply not placed on.

    Every connection is watched (see :class:`~runnerpool.rpc.Keepalive`): a connection made
    is one the runner spoke on within ``connect_timeout``, and one on which the runner falls
    silent for ``interval + timeout`` seconds is aborted. When a connection dies, each call on
    it ends at once: a call whose ``TryCall`` was sent is committed and fails
    (:class:`~runnerpool.RunnerConnectionError`, never retried); a call not yet sent is not
    placed (:class:`~runnerpool.RunnerUnavailableError`), and the placer tries the next
    runner. After a failed connect, calls are refused at once for ``connect_timeout``
    seconds, without touching the network.

    A call never waits for a free stream: when every connection carries as many calls as the
    runner allows per connection, another connection is opened, up to ``max_connections``;
    beyond that the call is refused as busy (:class:`~runnerpool.RunnerBusyError`) and the
    placer moves on.

    Args:
        address: ``host:port`` of the runner's gRPC server.
        ssl: TLS for the connection (see :func:`~runnerpool.client_tls`); plain TCP if None.
        connect_timeout: Seconds to wait for a connection before the runner counts as
            unreachable (Fn uses 0.1 s; a busy host needs more). Ignored when ``keepalive``
            is given.
        keepalive: Keepalive and connect settings; ``Keepalive(connect_timeout=...)`` when
            omitted.
        max_connections: Connections to the runner at most.
        health: Where to report failures and successes, and whether the runner is ejected.

    Raises:
        ValueError: If the address is not ``host:port``, or ``max_connections`` is below 1.
    """

    def __init__(
        self,
        address: str,
        *,
        ssl: ssl.SSLContext | None = None,
        connect_timeout: float = 1.0,
        keepalive: Keepalive | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        health: HealthReport | None = None,
    ) -> None:
        self._host, self._port = split_address(address)
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        self._address = address
        self._ssl = ssl
        self.keepalive = (
            Keepalive(connect_timeout=connect_timeout) if keepalive is None else keepalive
        )
        self.max_connections = max_connections
        self.health = health
        self._channels: list[RunnerChannel] = []
        self._stubs: dict[RunnerChannel, RunnerProtocolStub] = {}
        self._refuse_until = 0.0
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def address(self) -> str:
        """The runner's ``host:port``."""
        return self._address

    @property
    def ejected(self) -> bool:
        """Whether placers pass over this runner now (its health says it is ejected)."""
        health = self.health
        return health is not None and health.ejected

    @property
    def connections(self) -> int:
        """How many connections to the runner are open or opening."""
        return len(self._channels)

    def __repr__(self) -> str:
        return f"GrpcRunner({self._address!r})"

    async def try_exec(self, call: RunnerCall) -> None:
        """Offer the call to the runner and, if it takes it, stream it to the end.

        Raises:
            RunnerClosedError: If this runner was closed.
            RunnerUnavailableError: If the runner could not be reached.
            RunnerBusyError: If the runner refused with the 503 NACK, or every connection
                to it is full.
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
            channel = await self._open()
            try:
                async with self._stubs[channel].Engage.open(
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
                    # NACK makes the call retriable elsewhere (and clears the address).
                    call.runner_address = self._address
                    inline = _inline_frames(stream, call)
                    if inline is not None:
                        await self._send_frames(stream, inline)
                        await self._receive(stream, call)
                    else:
                        sender = asyncio.create_task(self._send_body(stream, call))
                        try:
                            await self._receive(stream, call)
                        finally:
                            if not sender.done():
                                sender.cancel()
                            await asyncio.gather(sender, return_exceptions=True)
            finally:
                channel.streams -= 1
        except GRPCError as exc:
            number = _status_number(exc)
            if number == 503:
                call.runner_address = None  # the NACK: this runner did not take the call
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

    async def _open(self, *, probing: bool = False) -> RunnerChannel:
        """Return a connection with room for one more stream, counted on it.

        Args:
            probing: Connect even within the hold after a failed connect (for status calls).

        Raises:
            RunnerUnavailableError: If the runner cannot be reached.
            RunnerBusyError: If every connection is full and no more may be opened.
        """
        chosen = None
        for channel in self._channels:
            # A connection whose send buffer is full is passed over too: opening a stream
            # there would wait, and a wait is what a dead connection cannot end.
            if channel.streams < channel.limit and (not channel.is_ready or channel.writable):
                chosen = channel
                break
        if chosen is None:
            if not probing and monotonic() < self._refuse_until:
                raise RunnerUnavailableError(f"{self._address}: could not connect just now")
            if len(self._channels) >= self.max_connections:
                raise RunnerBusyError(
                    f"{self._address}: all {self.max_connections} connections are full"
                )
            chosen = RunnerChannel(
                self._host, self._port, ssl=self._ssl, keepalive=self.keepalive, on_lost=self._lost
            )
            self._channels.append(chosen)
            self._stubs[chosen] = RunnerProtocolStub(chosen)
        chosen.streams += 1
        if chosen.is_ready:
            return chosen
        try:
            await chosen.connect()
        except _UNREACHABLE as exc:
            chosen.streams -= 1
            if self._forget(chosen):  # the first of the callers sharing the attempt reports
                self._refuse_until = monotonic() + self.keepalive.connect_timeout
                logger.info("Cannot connect to runner %s: %r", self._address, exc)
                if self.health is not None:
                    self.health.failure(f"connect: {exc!r}")
            raise RunnerUnavailableError(f"{self._address}: {exc!r}") from exc
        except BaseException:
            chosen.streams -= 1
            raise
        if self.health is not None:
            self.health.success()
        return chosen

    def _forget(self, channel: RunnerChannel) -> bool:
        """Drop a connection from the list; return whether it was still there."""
        if channel in self._stubs:
            del self._stubs[channel]
            self._channels.remove(channel)
            return True
        return False

    def _lost(self, channel: RunnerChannel, reason: str | None) -> None:
        """A connection that was made ended: drop it, and report it unless it was closed."""
        if not self._forget(channel) or self._closed:
            return
        logger.warning(
            "Connection to runner %s lost: %s",
            self._address,
            reason or "closed by the runner",
            extra={"runner_addr": self._address},
        )
        if self.health is not None:
            self.health.failure(reason or "connection lost")

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

    async def _send_frames(
        self, stream: Stream[pb.ClientMsg, pb.RunnerMsg], framed: list[pb.ClientMsg]
    ) -> None:
        # Never waits: _inline_frames checked that the frames fit the window and the
        # connection takes writes, so they join the TryCall in one socket write.
        try:
            for frame in framed[:-1]:
                await stream.send_message(frame)
            await stream.send_message(framed[-1], end=True)
        except (GRPCError, StreamTerminatedError, OSError) as exc:
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
                # Reported on the call: the load balancer's agent records them (Fn's
                # recordFinishStats); the transport keeps no metrics of its own.
                call.runner_timings = RunnerTimings(
                    finished.schedulerDuration, finished.executionDuration
                )
            else:
                logger.info("Ignoring an unknown message from runner %s", self._address)
        if finished is None:
            raise RunnerProtocolError("EOF")
        error = error_from_finished(finished)
        if error is not None:
            raise error

    async def status(self) -> RunnerStatus:
        """Ask the runner for its status (the unary ``Status`` call).

        It connects even within the hold after a failed connect: health probes use it.

        Raises:
            RunnerUnavailableError: If the runner could not be reached.
            RunnerBusyError: If every connection to the runner is full.
            RunnerConnectionError: If the call failed.
        """
        rid = request_id.get()
        try:
            channel = await self._open(probing=True)
            try:
                reply = await self._stubs[channel].Status(
                    empty_pb2.Empty(), metadata=None if rid is None else {"fn_request_id": rid}
                )
            finally:
                channel.streams -= 1
        except GRPCError as exc:
            raise RunnerConnectionError(
                f"{self._address}: {exc.message or exc.status.name}",
                grpc_status=_status_number(exc),
            ) from exc
        except _UNREACHABLE as exc:
            raise RunnerUnavailableError(f"{self._address}: {exc!r}") from exc
        return status_from_pb(reply)

    async def close(self) -> None:
        """Deprecated name of :meth:`aclose`."""
        warn_renamed(self, "close()")
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse new calls, let the calls in flight finish, then close the connections.

        Closing twice is harmless.
        """
        self._closed = True
        await self._idle.wait()
        for channel in list(self._channels):
            self._forget(channel)
            channel.close()
