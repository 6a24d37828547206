"""One call on the runner side of an ``Engage`` stream: body in, response out, then finished.

The port of the call handling in Fn's ``pure_runner.go``, minus its queues and goroutines:
an asyncio task pumps the request body from the stream into the executor, and the response
writer sends ``result_start`` and ``data`` frames as the executor writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from .._errors import RequestTooLargeError, ResponseTooLargeError
from ..rpc.wire import (
    MAX_DATA_CHUNK,
    ProtocolViolation,
    finished_error_fields,
    format_date,
    nanoseconds,
    pb,
)

if TYPE_CHECKING:
    from .._model import Call

__all__ = [
    "EngageStream",
    "ProtocolViolation",
    "StreamResponseWriter",
    "finished_message",
    "request_body",
]


class EngageStream(Protocol):
    """The two operations the runner needs from a gRPC stack's ``Engage`` stream."""

    async def recv(self) -> pb.ClientMsg | None:
        """Return the next message from the load balancer, or ``None`` at its end."""

    async def send(self, message: pb.RunnerMsg) -> None:
        """Send one message to the load balancer."""


async def request_body(
    stream: EngageStream, max_size: int | None, done: asyncio.Event
) -> AsyncIterator[bytes]:
    """Yield the request body from the stream's data frames, until the frame with ``eof``.

    Args:
        stream: The Engage stream, after its TryCall.
        max_size: Refuse a body larger than this many bytes (``None``: no limit).
        done: Set once the whole body was read.

    Raises:
        ProtocolViolation: If a message other than a data frame arrives, or the stream ends
            before ``eof``.
        RequestTooLargeError: If the body exceeds ``max_size``.
    """
    size = 0
    while True:
        message = await stream.recv()
        if message is None or message.WhichOneof("body") != "data":
            raise ProtocolViolation("Protocol failure: expected ClientMsg_Data")
        chunk = message.data.data
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise RequestTooLargeError
        if chunk:
            yield chunk
        if message.data.eof:
            done.set()
            return


class StreamResponseWriter:
    """A response writer that streams ``result_start`` and ``data`` frames to the LB.

    Headers added before :meth:`write_header` (or before the first write, which implies
    status 200) go out in ``result_start``; the body goes out in frames of at most 10 240
    bytes. A detached call's response was already answered with 202: its writes are dropped.

    Args:
        stream: The Engage stream.
        max_size: Refuse a response body larger than this many bytes (``None``: no limit).
        detached: Whether writes are to be discarded.
    """

    def __init__(self, stream: EngageStream, max_size: int | None, detached: bool) -> None:
        self._stream = stream
        self._max_size = max_size
        self._detached = detached
        self._headers: list[pb.HttpHeader] = []
        self._started = detached  # a detached call's 202 is sent by the runner, not here
        self._status = 200
        self._size = 0

    def add_header(self, name: str, value: str) -> None:
        """Add a response header; ignored once the status was sent."""
        if not self._started:
            self._headers.append(pb.HttpHeader(key=name, value=value))

    def write_header(self, status_code: int) -> None:
        """Queue the status; it is sent with the first body frame or at the end of the call."""
        if not self._started:
            self._status = status_code

    async def start(self) -> None:
        """Send ``result_start`` now, if it was not sent yet."""
        if self._started:
            return
        self._started = True
        meta = pb.HttpRespMeta(status_code=self._status, headers=self._headers)
        await self._stream.send(pb.RunnerMsg(result_start=pb.CallResultStart(http=meta)))

    async def write(self, data: bytes) -> None:
        """Send body bytes, after ``result_start``.

        Raises:
            ResponseTooLargeError: If the body would exceed the limit.
        """
        if self._detached or not data:
            return
        self._size += len(data)
        if self._max_size is not None and self._size > self._max_size:
            raise ResponseTooLargeError
        await self.start()
        view = memoryview(data)
        for offset in range(0, len(data), MAX_DATA_CHUNK):
            chunk = bytes(view[offset : offset + MAX_DATA_CHUNK])
            await self._stream.send(pb.RunnerMsg(data=pb.DataFrame(data=chunk)))


def finished_message(
    model: Call,
    error: BaseException | None,
    received: float,
    started: float | None,
    ended: float,
) -> pb.RunnerMsg:
    """Build the ``CallFinished`` that ends an Engage stream.

    Args:
        model: The call's model (its id, image and dates are reported).
        error: Why the call failed, or ``None`` for success.
        received: When the runner received the TryCall (``time.monotonic()``).
        started: When the executor started, or ``None`` if it never did (a NACK, or an
            error before running).
        ended: When the call ended.
    """
    code, text, user = (0, "", False) if error is None else finished_error_fields(error)
    finished = pb.CallFinished(
        success=error is None,
        details=model.id,
        errorCode=code,
        errorStr=text,
        errorUser=user,
        image=model.image,
        createdAt=format_date(model.created_at),
    )
    if started is not None:
        finished.startedAt = format_date(model.started_at)
        # As Fn's runner does: a call that started always reports a completion date.
        finished.completedAt = format_date(model.completed_at or datetime.now(UTC))
        finished.schedulerDuration = nanoseconds(started - received)
        finished.executionDuration = nanoseconds(ended - started)
    return pb.RunnerMsg(finished=finished)
