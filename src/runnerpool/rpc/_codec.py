"""Conversions between the runner protocol's messages and runnerpool's own types.

No generated protobuf type leaves the ``rpc`` package: this module turns them into
:class:`~runnerpool.RunnerStatus`, exceptions and bytes, and back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from .._errors import APIError, FuncError, RunnerBusyError
from .._status import RunnerStatus
from .._times import format_time, parse_time
from ._proto import runner_pb2 as pb

__all__ = [
    "MAX_DATA_CHUNK",
    "ProtocolViolation",
    "body_frames",
    "error_from_finished",
    "finished_error_fields",
    "format_date",
    "frames",
    "parse_date",
    "seconds",
    "status_from_pb",
    "status_to_pb",
    "try_message",
]

#: The largest data frame either side sends (Fn's ``MaxDataChunk``).
MAX_DATA_CHUNK = 10 * 1024

_NS = 1_000_000_000


class ProtocolViolation(Exception):
    """Raised when the load balancer breaks the protocol; the stream ends with an error status."""


def seconds(nanoseconds: int) -> float:
    """Convert the protocol's int64 nanoseconds to seconds."""
    return nanoseconds / _NS


def nanoseconds(value: float) -> int:
    """Convert seconds to the protocol's int64 nanoseconds."""
    return round(value * _NS)


def parse_date(text: str) -> datetime | None:
    """Read a protocol date (RFC 3339); an empty string is no date.

    Fn's LB turns an empty date into the Unix epoch (``TranslateGRPCStatusToRunnerStatus``);
    runnerpool says "no date" instead. A malformed date is also no date: a status must not
    fail because of one field.
    """
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def format_date(value: datetime | None) -> str:
    """Write a date as the protocol carries it (Go's layout with milliseconds), or ``""``."""
    return "" if value is None else format_time(value)


def status_from_pb(msg: pb.RunnerStatus) -> RunnerStatus:
    """Convert a ``RunnerStatus`` message to :class:`~runnerpool.RunnerStatus`."""
    return RunnerStatus(
        active_request_count=msg.active,
        requests_received=msg.requestsReceived,
        requests_handled=msg.requestsHandled,
        kdumps_on_disk=msg.kdumpsOnDisk,
        status_failed=msg.failed,
        cached=msg.cached,
        status_id=msg.id,
        details=msg.details,
        error_code=msg.errorCode,
        error_str=msg.errorStr,
        created_at=parse_date(msg.createdAt),
        started_at=parse_date(msg.startedAt),
        completed_at=parse_date(msg.completedAt),
        scheduler_duration=seconds(msg.schedulerDuration),
        execution_duration=seconds(msg.executionDuration),
        image_pull_wait_duration=seconds(msg.imagePullWaitDuration),
        ctr_prep_duration=seconds(msg.ctrPrepDuration),
        ctr_create_duration=seconds(msg.ctrCreateDuration),
        init_start_time=seconds(msg.initStartTime),
        is_network_disabled=msg.isNetworkDisabled,
        custom_status=dict(msg.customStatus),
    )


def status_to_pb(status: RunnerStatus) -> pb.RunnerStatus:
    """Convert a :class:`~runnerpool.RunnerStatus` to its message."""
    return pb.RunnerStatus(
        active=status.active_request_count,
        requestsReceived=status.requests_received,
        requestsHandled=status.requests_handled,
        kdumpsOnDisk=status.kdumps_on_disk,
        failed=status.status_failed,
        cached=status.cached,
        id=status.status_id,
        details=status.details,
        errorCode=status.error_code,
        errorStr=status.error_str,
        createdAt=format_date(status.created_at),
        startedAt=format_date(status.started_at),
        completedAt=format_date(status.completed_at),
        schedulerDuration=nanoseconds(status.scheduler_duration),
        executionDuration=nanoseconds(status.execution_duration),
        imagePullWaitDuration=nanoseconds(status.image_pull_wait_duration),
        ctrPrepDuration=nanoseconds(status.ctr_prep_duration),
        ctrCreateDuration=nanoseconds(status.ctr_create_duration),
        initStartTime=nanoseconds(status.init_start_time),
        isNetworkDisabled=status.is_network_disabled,
        customStatus=status.custom_status,
    )


def error_from_finished(finished: pb.CallFinished) -> BaseException | None:
    """Return the error a ``CallFinished`` reports, or ``None`` for success.

    Code 503 is the NACK, whatever else the message says (Fn tests the code alone, so even a
    user error with code 503 is a NACK): the call was not taken.
    """
    if finished.success:
        return None
    if finished.errorCode == 503:
        return RunnerBusyError(finished.errorStr or RunnerBusyError().args[0])
    message = finished.errorStr or "Unknown Error From Pure Runner"
    kind = FuncError if finished.errorUser else APIError
    return kind(message, status_code=finished.errorCode)


def finished_error_fields(error: BaseException) -> tuple[int, str, bool]:
    """Return ``(errorCode, errorStr, errorUser)`` for a call that failed with ``error``.

    An :class:`~runnerpool.APIError` keeps its code; anything else has code 0, as Fn's
    ``GetAPIErrorCode`` gives for errors that carry no code.
    """
    if isinstance(error, APIError):
        return error.status_code, error.message, isinstance(error, FuncError)
    return 0, str(error) or type(error).__name__, False


def try_message(try_call: pb.TryCall) -> pb.ClientMsg:
    """Wrap a ``TryCall`` in a ``ClientMsg`` (its field is named ``try``, a Python keyword)."""
    message = pb.ClientMsg()
    getattr(message, "try").CopyFrom(try_call)
    return message


def body_frames(body: bytes | bytearray) -> list[pb.ClientMsg]:
    """Frame a body held in memory as :func:`frames` does: data frames, then the empty eof."""
    framed = [
        pb.ClientMsg(data=pb.DataFrame(data=bytes(body[start : start + MAX_DATA_CHUNK])))
        for start in range(0, len(body), MAX_DATA_CHUNK)
    ]
    framed.append(pb.ClientMsg(data=pb.DataFrame(eof=True)))
    return framed


async def frames(body: AsyncIterator[bytes]) -> AsyncIterator[pb.ClientMsg]:
    """Frame a request body as the LB sends it: data of at most 10 240 bytes, then an empty eof.

    A 25 600-byte body gives frames of 10 240, 10 240 and 5 120 bytes, then an empty frame
    with ``eof`` set; an empty body gives the empty eof frame alone.
    """
    async for chunk in body:
        for start in range(0, len(chunk), MAX_DATA_CHUNK):
            yield pb.ClientMsg(data=pb.DataFrame(data=chunk[start : start + MAX_DATA_CHUNK]))
    yield pb.ClientMsg(data=pb.DataFrame(eof=True))
