"""Fakes for testing placers, runners and the code that calls them.

* :class:`FakeCall`: a call with a body, a recording response writer and a deadline.
* :class:`FakeRunner`: a runner that plays scripted outcomes (:func:`busy`, :func:`succeed`,
  :func:`fail`, :func:`refuse`, :func:`hang`) and records every attempt.
* :class:`FakeRunnerPool`: a pool that answers scripted runner lists and errors.
* :class:`FakeDetachedPlacer`: a placer that only waits (Go's ``fake_placer.go``).

runnerpool's own tests use these, so they are tested with the library::

    runner = FakeRunner("r1", busy(), succeed(b"hi"))
    pool = FakeRunnerPool([runner])
    call = FakeCall(Call(fn_id="f1"), body=b"x")  # Call is runnerpool.Call
    await NaivePlacer().place_call(pool, call)
    assert [a.outcome for a in runner.attempts] == ["busy", "succeed"]
"""

from __future__ import annotations

import asyncio
import itertools
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeAlias, cast

from ._call import BufferedCall, BufferedResponse
from ._config import PlacerConfig
from ._errors import NotPlacedError, PartialRunnersError, RunnerBusyError, RunnerClosedError
from ._interfaces import Placer, Runner, RunnerCall, RunnerPool
from ._resource import AsyncResource, aclose_resource, warn_renamed
from ._status import RunnerStatus
from .placers import DEFAULT_RUNTIME, PlacerRuntime, PlacerTracker

__all__ = [
    "Attempt",
    "FakeCall",
    "FakeDetachedPlacer",
    "FakeRunner",
    "FakeRunnerPool",
    "Outcome",
    "busy",
    "fail",
    "hang",
    "refuse",
    "succeed",
]


def __getattr__(name: str) -> object:
    """Serve the deprecated ``RecordingResponseWriter``: :class:`~runnerpool.BufferedResponse`.

    It was a second name for the same class; it warns for one release, then goes.
    """
    if name == "RecordingResponseWriter":
        warnings.warn(
            "runnerpool.testing.RecordingResponseWriter is deprecated; use "
            "runnerpool.BufferedResponse instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return BufferedResponse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(eq=False)
class FakeCall(BufferedCall):
    """A :class:`~runnerpool.BufferedCall` for tests: a chunked body and a settable deadline.

    Attributes:
        chunk_size: The size of the pieces :meth:`request_body` yields.
    """

    chunk_size: int = 65536

    async def request_body(self) -> AsyncIterator[bytes]:
        """Yield the whole body, in pieces of ``chunk_size`` bytes."""
        for start in range(0, len(self.body), self.chunk_size):
            yield bytes(self.body[start : start + self.chunk_size])

    def expire_in(self, seconds: float) -> FakeCall:
        """Set the deadline ``seconds`` from now; return self."""
        self.deadline = time.monotonic() + seconds
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


class FakeRunner(AsyncResource, Runner):
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
        closed: Whether :meth:`aclose` was called.
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
            # As a GrpcRunner does: the address is set at the commit, cleared by a refusal.
            call.runner_address = self._address
            try:
                await outcome.action(self, call)
            except NotPlacedError:
                call.runner_address = None
                raise
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
        """Deprecated name of :meth:`aclose`."""
        warn_renamed(self, "close()")
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse new attempts, then wait for the ones in flight; closing twice is harmless."""
        self.closed = True
        await self._idle.wait()


PoolAnswer: TypeAlias = "Sequence[Runner] | BaseException | tuple[Sequence[Runner], BaseException]"


class FakeRunnerPool(AsyncResource, RunnerPool):
    """A pool that answers scripted runner lists and errors, one per ``runners`` call.

    Each answer is a list of runners, an exception (raised: no runners), or a pair of both
    (the runners are tried, and the error is the result if none takes the call). Once the
    script is spent, every call gives ``then``.

    Args:
        then: The answer once the script is spent (an empty list by default).
        script: Answers for the first calls, in order.

    Attributes:
        calls: How many times :meth:`runners` was called.
        closed: Whether :meth:`aclose` was called.
    """

    def __init__(self, then: PoolAnswer = (), *, script: Sequence[PoolAnswer] = ()) -> None:
        self._then = then
        self._script = list(script)
        self.calls = 0
        self.closed = False
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

    @property
    def shut_down(self) -> bool:
        """Deprecated name of :attr:`closed`."""
        warn_renamed(self, "shut_down", "closed")
        return self.closed

    async def shutdown(self) -> None:
        """Deprecated name of :meth:`aclose`."""
        warn_renamed(self, "shutdown()")
        await self.aclose()

    async def aclose(self) -> None:
        """Close every runner this pool has handed out; raise the first error after all.

        Closing twice is harmless if the runners' own close is.

        Raises:
            Exception: The first error a runner's ``aclose`` raised.
        """
        self.closed = True
        first: Exception | None = None
        for runner in self._seen.values():
            try:
                await aclose_resource(runner, "close")
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first


class FakeDetachedPlacer(Placer):
    """Sleeps instead of placing, then succeeds unless the placer's timeout passed.

    The port of Go's ``fake_placer.go``. It never asks the pool for runners, so tests of
    detached-call handling can use it with no runners at all. Metrics are recorded as for a
    real placement with no attempts.

    Args:
        config: Timeouts; ``detached_placer_timeout`` applies to detached calls.
        sleep: Seconds to wait before answering.
        runtime: The clock and metric views of its trackers (keyword only).
    """

    __slots__ = ("_config", "_runtime", "_sleep")

    def __init__(
        self, config: PlacerConfig, sleep: float, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
    ) -> None:
        self._config = config
        self._sleep = sleep
        self._runtime = runtime

    @property
    def config(self) -> PlacerConfig:
        """The placer's timeouts and back-off."""
        return self._config

    async def place_call(self, pool: RunnerPool | None, call: RunnerCall) -> None:
        """Wait ``sleep`` seconds, then report the placer's timeout if it passed.

        Raises:
            TimeoutError: If the placer's timeout passed while the request's deadline did not.
            asyncio.CancelledError: If the caller cancelled.
        """
        tracker = PlacerTracker(self._config, call, runtime=self._runtime)
        try:
            await asyncio.sleep(self._sleep)
            if tracker.placer_expired() and not tracker.request_expired():
                raise TimeoutError("placer timeout passed")
        except asyncio.CancelledError:
            tracker.mark_cancelled()
            raise
        finally:
            tracker.done()
