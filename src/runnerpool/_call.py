"""A call whose request body is in memory and whose response is buffered.

What a load balancer needs: the body, read once from its client, replayed on every attempt;
the response kept until the call ends, within a size limit.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from ._errors import ResponseTooLargeError
from ._interfaces import LogWriter
from ._model import Call

__all__ = ["BufferedCall", "BufferedResponse", "RunnerTimings"]

#: A ``bytearray`` body is replayed in ``bytes`` pieces of this size: one piece is copied at
#: a time, never the whole body.
_PIECE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunnerTimings:
    """The timings a runner reported for a call it ran (Fn's ``CallFinished`` durations).

    Attributes:
        scheduler_duration: Nanoseconds from the runner receiving the call to starting it;
            0 when the runner gave none.
        execution_duration: Nanoseconds the call ran; 0 when the runner gave none.
    """

    scheduler_duration: int = 0
    execution_duration: int = 0


class BufferedResponse:
    """A response writer that keeps the response in memory.

    Args:
        max_size: Refuse a body larger than this many bytes (``None``: no limit).

    Attributes:
        status_code: The status written, or ``None`` if none was (an HTTP front end then
            answers 200).
        headers: Every header added, in order, as (name, value) pairs.
        body: The body written so far.
    """

    def __init__(self, max_size: int | None = None) -> None:
        self.status_code: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.max_size = max_size

    def add_header(self, name: str, value: str) -> None:
        """Add one header value."""
        self.headers.append((name, value))

    def write_header(self, status_code: int) -> None:
        """Set the status code."""
        self.status_code = status_code

    async def write(self, data: bytes) -> None:
        """Append to the body.

        Raises:
            ResponseTooLargeError: If the body would exceed ``max_size`` (Fn's 502 "function
                response body too large"); nothing more is kept.
        """
        if self.max_size is not None and len(self.body) + len(data) > self.max_size:
            raise ResponseTooLargeError
        self.body += data


@dataclass(eq=False)
class BufferedCall:
    """A :class:`~runnerpool.RunnerCall` whose body every attempt reads again from the start.

    Attributes:
        model: The call's model.
        body: The request body; a load balancer keeps the ``bytearray`` it read the body
            into, so that the body is held once.
        slot_hash_id: The hex slot key (``""``: let the runner decide, as Fn's LB does).
        extensions: Extra key/values for the runner.
        response_writer: Where runners write the response.
        stderr: Where the function's log output goes.
        deadline: The request's deadline on the ``time.monotonic()`` clock (which is
            asyncio's), or ``None``.
        user_execution_time: Seconds spent in user code, ``None`` until the first add.
        runner_address: The address of the runner that took the call, once one did.
        runner_timings: The timings the runner reported when the call finished, if any.
    """

    model: Call = field(default_factory=Call)
    body: bytes | bytearray = b""
    slot_hash_id: str = ""
    extensions: Mapping[str, str] = field(default_factory=dict)
    response_writer: BufferedResponse = field(default_factory=BufferedResponse)
    stderr: LogWriter = field(default_factory=io.BytesIO)
    deadline: float | None = None
    user_execution_time: float | None = None
    runner_address: str | None = None
    runner_timings: RunnerTimings | None = None

    async def request_body(self) -> AsyncIterator[bytes]:
        """Yield the whole body, from its start."""
        body = self.body
        if isinstance(body, bytes):
            if body:
                yield body
            return
        view = memoryview(body)
        for start in range(0, len(view), _PIECE):
            yield bytes(view[start : start + _PIECE])

    def add_user_execution_time(self, seconds: float) -> None:
        """Add time spent in user code; the model's ``execution_duration`` follows (ns)."""
        self.user_execution_time = (self.user_execution_time or 0.0) + seconds
        self.model.execution_duration = round(self.user_execution_time * 1e9)
