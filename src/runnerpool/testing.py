"""Fakes for testing placers, runners and the code that calls them.

* :class:`FakeCall`: a call with a body, a recording response writer and a deadline.
* :class:`FakeRunner`: a runner that plays scripted outcomes (:func:`busy`, :func:`succeed`,
  :func:`fail`, :func:`refuse`, :func:`hang`) and records every attempt.
* :class:`FakeRunnerPool`: a pool that answers scripted runner lists and errors.

runnerpool's own tests use these, so they are tested with the library::

    runner = FakeRunner("r1", busy(), succeed(b"hi"))
    pool = FakeRunnerPool([runner])
    call = FakeCall(Call(fn_id="f1"), body=b"x")
    await NaivePlacer().place_call(pool, call)
    assert [a.outcome for a in runner.attempts] == ["busy", "succeed"]
"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeAlias, cast

from ._errors import NotPlacedError, PartialRunnersError, RunnerBusyError, RunnerClosedError
from ._interfaces import LogWriter, Runner, RunnerCall, RunnerPool
from ._model import Call
from ._status import RunnerStatus

__all__ = [
    "Attempt",
    "FakeCall",
    "FakeRunner",
    "FakeRunnerPool",
    "Outcome",
    "RecordingResponseWriter",
    "busy",
    "fail",
    "hang",
    "refuse",
    "succeed",
]


class RecordingResponseWriter:
    """A response writer that keeps what it is given.

    Args:
        max_size: Refuse a body larger than this many bytes (``None``: no limit).

    Attributes:
        status_code: The last status written, or ``None``.
        headers: Every header added, in order, as (name, value) pairs.
        body: The body written so far.
    """

    def __init__(self, max_size: int | None = None) -> None:
        self.status_code: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self._max_size = max_size

    def add_header(self, name: str, value: str) -> None:
        """Add one header value."""
        self.headers.append((name, value))

    def write_header(self, status_code: int) -> None:
        """Set the status code."""
        self.status_code = status_code

    async def write(self, data: bytes) -> None:
        """Append to the body.

        Raises:
            ValueError: If the body would exceed ``max_size``.
        """
        if self._max_size is not None and len(self.body) + len(data) > self._max_size:
            raise ValueError(f"response body larger than {self._max_size} bytes")
        self.body += data


@dataclass(eq=False)
class FakeCall:
    """A call for tests, whose body every attempt can read again from the start.

    It satisfies :class:`~runnerpool.RunnerCall` structurally (a dataclass cannot subclass a
    Protocol whose attributes are properties).

    Attributes:
        model: The call's model.
        body: The request body.
        chunk_size: The size of the pieces :meth:`request_body` yields.
        slot_hash_id: The hex slot key (``""``: let the runner decide).
        extensions: Extra key/values for the runner.
        response_writer: Where runners write the response.
        stderr: Where the function's log output goes.
        deadline: The request's deadline on the loop's clock; see :meth:`expire_in`.
        user_execution_time: Seconds spent in user code, ``None`` until the first add.
    """

    model: Call = field(default_factory=Call)
    body: bytes = b""
    chunk_size: int = 65536
    slot_hash_id: str = ""
    extensions: Mapping[str, str] = field(default_factory=dict)
    response_writer: RecordingResponseWriter = field(default_factory=RecordingResponseWriter)
    stderr: LogWriter = field(default_factory=io.BytesIO)
    deadline: float | None = None
    user_execution_time: float | None = None

    async def request_body(self) -> AsyncIterator[bytes]:
        """Yield the whole body, in pieces of ``chunk_size`` bytes."""
        for start in range(0, len(self.body), self.chunk_size):
            yield self.body[start : start + self.chunk_size]

    def add_user_execution_time(self, seconds: float) -> None:
        """Add time spent in user code; the model's ``execution_duration`` follows (ns)."""
        self.user_execution_time = (self.user_execution_time or 0.0) + seconds
        self.model.execution_duration = round(self.user_execution_time * 1e9)

    def expire_in(self, seconds: float) -> FakeCall:
        """Set the deadline ``seconds`` from now on the running loop's clock; return self."""
        self.deadline = asyncio.get_running_loop().time() + seconds
        return self


_SEQUENCE = itertools.count()

#: What a scripted runner does with one attempt; it may raise, sleep, or write a response.
OutcomeAction: TypeAlias = Callable[["FakeRunner", RunnerCall], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """One scripted outcome of an attempt on a :class:`FakeRunner`.

    Attributes:
        name: A label recorded in :attr:`Attempt.outcome`.
        action: What the runner does.
    """

    name: str
    action: OutcomeAction


def busy() -> Outcome:
    """Refuse with the 503 too-busy NACK (:class:`RunnerBusyError`): not placed."""

    async def action(runner: FakeRunner, call: RunnerCall) -> None:
        raise RunnerBusyError

    return Outcome("busy", action)


def refuse(error: NotPlacedError | None = None) -> Outcome:
    """Refuse without committing, with ``error`` (a plain :class:`NotPlacedError` by default)."""

    async def action(runner: FakeRunner, call: RunnerCall) -> None:
        raise error if error is not None else NotPlacedError(f"{runner.address} refused")

    return Outcome("refuse", action)


def succeed(
    body: bytes = b"", *, status_code: int = 200, delay: float = 0.0, execution_time: float = 0.0
) -> Outcome:
    """Take the call, optionally wait, write a response, and succeed.

    Args:
        body: The response body.
        status_code: The response status.
        delay: Seconds to wait before answering (the call's running time).
        execution_time: Seconds reported as user execution time.
    """

    async def action(runner: FakeRunner, call: RunnerCall) -> None:
        if delay:
            await asyncio.sleep(delay)
        if execution_time:
            call.add_user_execution_time(execution_time)
        call.response_writer.write_header(status_code)
        if body:
            await call.response_writer.write(body)

    return Outcome("succeed", action)


def fail(error: BaseException, *, delay: float = 0.0) -> Outcome:
    """Take the call (commit), optionally wait, then fail with ``error``: never retried."""

    async def action(runner: FakeRunner, call: RunnerCall) -> None:
        if delay:
            await asyncio.sleep(delay)
        raise error

    return Outcome("fail", action)


def hang() -> Outcome:
    """Take the call and never answer, until cancelled (for deadline and cancel tests)."""

    async def action(runner: FakeRunner, call: RunnerCall) -> None:
        await asyncio.Event().wait()

    return Outcome("hang", action)


@dataclass(frozen=True)
class Attempt:
    """One recorded attempt on a :class:`FakeRunner`.

    Attributes:
        call: The call offered.
        body: The request body as this attempt read it.
        outcome: The name of the scripted outcome played.
        at: When the attempt started, on the loop's clock.
        sequence: Increases with every attempt on any fake runner, to order attempts
            across runners.
    """

    call: RunnerCall
    body: bytes
    outcome: str
    at: float
    sequence: int = field(default_factory=lambda: next(_SEQUENCE))


class FakeRunner(Runner):
    """A runner that plays scripted outcomes, one per attempt, and records each attempt.

    Each attempt first reads the whole request body (as a real runner streams it), then
    plays the next outcome of the script; once the script is spent it plays ``then``.

    Args:
        address: The runner's address.
        *script: Outcomes for the first attempts, in order.
        then: The outcome of every later attempt; :func:`succeed` by default.
        capacity: At most this many calls at once; further attempts get the 503 NACK
            without using the script (like Fn's non-blocking runner at full capacity).
        status: What :meth:`status` reports beyond the counters it keeps.

    Attributes:
        attempts: Every attempt, in order, NACKs from capacity included.
        closed: Whether :meth:`close` was called.
    """

    def __init__(
        self,
        address: str,
        *script: Outcome,
        then: Outcome | None = None,
        capacity: int | None = None,
        status: RunnerStatus | None = None,
    ) -> None:
        self._address = address
        self._script = list(script)
        self._then = succeed() if then is None else then
        self._capacity = capacity
        self._status = RunnerStatus() if status is None else status
        self._in_flight = 0
        self._received = 0
        self._handled = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.attempts: list[Attempt] = []
        self.closed = False

    @property
    def address(self) -> str:
        """The runner's address."""
        return self._address

    @property
    def in_flight(self) -> int:
        """How many attempts are running now."""
        return self._in_flight

    async def try_exec(self, call: RunnerCall) -> None:
        """Play the next scripted outcome for this call.

        Raises:
            RunnerClosedError: If the runner was closed.
            RunnerBusyError: If the runner is at capacity, or the script says so.
            BaseException: Whatever the script says.
        """
        if self.closed:
            raise RunnerClosedError
        now = asyncio.get_running_loop().time()
        self._received += 1
        if self._capacity is not None and self._in_flight >= self._capacity:
            self.attempts.append(Attempt(call, b"", "busy", now))
            raise RunnerBusyError
        outcome = self._script.pop(0) if self._script else self._then
        self._in_flight += 1
        self._idle.clear()
        try:
            body = b"".join([chunk async for chunk in call.request_body()])
            self.attempts.append(Attempt(call, body, outcome.name, now))
            await outcome.action(self, call)
            self._handled += 1
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def status(self) -> RunnerStatus:
        """Return the configured status with live counters."""
        return replace(
            self._status,
            active_request_count=self._in_flight,
            requests_received=self._received,
            requests_handled=self._handled,
        )

    async def close(self) -> None:
        """Refuse new attempts, then wait for the ones in flight."""
        self.closed = True
        await self._idle.wait()


PoolAnswer: TypeAlias = "Sequence[Runner] | BaseException | tuple[Sequence[Runner], BaseException]"


class FakeRunnerPool(RunnerPool):
    """A pool that answers scripted runner lists and errors, one per ``runners`` call.

    Each answer is a list of runners, an exception (raised: no runners), or a pair of both
    (the runners are tried, and the error is the result if none takes the call). Once the
    script is spent, every call gives ``then``.

    Args:
        then: The answer once the script is spent (an empty list by default).
        script: Answers for the first calls, in order.

    Attributes:
        calls: How many times :meth:`runners` was called.
        shut_down: Whether :meth:`shutdown` was called.
    """

    def __init__(self, then: PoolAnswer = (), *, script: Sequence[PoolAnswer] = ()) -> None:
        self._then = then
        self._script = list(script)
        self.calls = 0
        self.shut_down = False
        self._seen: dict[int, Runner] = {}

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """Return the next scripted answer.

        Raises:
            BaseException: A scripted error.
            PartialRunnersError: A scripted pair of runners and error.
        """
        self.calls += 1
        answer = self._script.pop(0) if self._script else self._then
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[1], BaseException):
            runners, error = answer
            self._remember(runners)
            raise PartialRunnersError(runners, error)
        runners = cast("Sequence[Runner]", answer)
        self._remember(runners)
        return runners

    def _remember(self, runners: Sequence[Runner]) -> None:
        for runner in runners:
            self._seen[id(runner)] = runner

    async def shutdown(self) -> None:
        """Close every runner this pool has handed out; raise the first error after all.

        Raises:
            Exception: The first error a runner's ``close`` raised.
        """
        self.shut_down = True
        first: Exception | None = None
        for runner in self._seen.values():
            try:
                await runner.close()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first
