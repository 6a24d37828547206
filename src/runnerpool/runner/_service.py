"""The runner service: admits or refuses calls, runs them, and reports its status.

The port of Fn's pure runner (``pure_runner.go``), independent of the gRPC stack: the
transport adapter hands each ``Engage`` stream to :meth:`RunnerService.engage` and each status
request to :meth:`RunnerService.status`.

Deliberate differences from Fn:

* ``requests_handled`` counts the calls that finished without a NACK, as the protocol says
  (Fn counts NACKs too);
* while draining, new calls get the 503 NACK, so the load balancer places them elsewhere
  (Fn refuses the connection, which the load balancer also retries).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeAlias

from .. import _tracing
from .._errors import (
    APIError,
    CallTimeoutError,
    FunctionFailedError,
    RequestTooLargeError,
    ServerBusyError,
)
from .._images import valid_image
from .._model import Call
from .._status import RunnerStatus
from ..rpc.wire import pb
from ._capacity import Capacity
from ._engage import (
    EngageStream,
    ProtocolViolation,
    StreamResponseWriter,
    finished_message,
    request_body,
)
from ._executor import Admission, Execution, Reporting
from ._health import HealthCheck, HealthTracker
from ._logs import LogStreamer
from ._metrics import RunnerMetrics, call_outcome

if TYPE_CHECKING:
    from ._executor import Executor

__all__ = ["ConfigureHook", "RunnerService"]

logger = logging.getLogger(__name__)

#: Receives ``ConfigureRunner``'s map.
ConfigureHook: TypeAlias = Callable[[Mapping[str, str]], Awaitable[None]]

_CANNOT_ALLOCATE = APIError("Requested CPU/Memory cannot be allocated", status_code=400)
_INVALID_IMAGE = APIError("Invalid image", status_code=400)
_INVALID_TIMEOUT = APIError(
    "Invalid timeout: a call's timeout must be at least 1 second", status_code=400
)
_DETACH_UNSUPPORTED = APIError(
    "Detach call functions are not supported on this server", status_code=501
)
#: An executor overrunning its call's timeout by this much is cut off by the runner.
_TIMEOUT_GRACE = 1.0


class _DetachedStream:
    """A detached call's stream: its body was read already; sends after the LB left are dropped."""

    __slots__ = ("_body", "_gone", "_stream")

    def __init__(self, stream: EngageStream, body: list[bytes]) -> None:
        self._stream = stream
        self._body = body
        self._gone = False

    async def recv(self) -> pb.ClientMsg | None:
        # The body again, as one frame with eof, for request_body().
        data = b"".join(self._body)
        self._body = []
        return pb.ClientMsg(data=pb.DataFrame(data=data, eof=True))

    async def send(self, message: pb.RunnerMsg) -> None:
        if self._gone:
            return
        try:
            await self._stream.send(message)
        except Exception as exc:
            # The load balancer went away: the call goes on; nobody hears its end.
            self._gone = True
            logger.info("Detached call's load balancer is gone: %r", exc)


class RunnerService:
    """Admission, execution and status of one runner, whatever serves it over the network.

    Args:
        executor: Runs the calls the runner admits.
        capacity: Memory and call slots; calls that do not fit now are NACKed at once.
        max_request_size: Refuse request bodies larger than this (bytes; ``None``: no limit).
        max_response_size: Refuse response bodies larger than this (bytes; ``None``: no limit).
        detached: Whether detached calls are accepted (otherwise they get 501).
        health_check: A custom health check; its result is cached for ``status_ttl``.
        status_ttl: Seconds a health check result is reused.
        barrier_path: If set, the runner reports its network as disabled while this file
            is missing (Fn's status network enabler).
        configure: Receives ``ConfigureRunner`` maps; unset, they are logged and ignored.
        log_streamer: Serves ``StreamLogs``; unset, ``StreamLogs`` fails as in Fn.
        metrics: Where admissions, NACKs and calls are counted (counters of its own by
            default); it also exports what the service holds.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        capacity: Capacity | None = None,
        max_request_size: int | None = None,
        max_response_size: int | None = None,
        detached: bool = True,
        health_check: HealthCheck | None = None,
        status_ttl: float = 1.5,
        barrier_path: str | None = None,
        configure: ConfigureHook | None = None,
        log_streamer: LogStreamer | None = None,
        metrics: RunnerMetrics | None = None,
    ) -> None:
        self.executor = executor
        self.capacity = Capacity() if capacity is None else capacity
        self._max_request = max_request_size
        self._max_response = max_response_size
        self._detached = detached
        self._barrier = barrier_path
        self._health = (
            None
            if health_check is None
            else HealthTracker(health_check, ttl=status_ttl, network_ok=self._network_ok)
        )
        self._configure = configure
        self.log_streamer = log_streamer
        self._received = 0
        self._handled = 0
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._detached_calls: set[asyncio.Task[None]] = set()
        self.draining = False
        self.metrics = RunnerMetrics() if metrics is None else metrics
        self.metrics.watch(self)

    @property
    def active(self) -> int:
        """Calls in flight: received and not ended (NACKed ones end at once)."""
        return self._active

    # -- Engage -----------------------------------------------------------------------------

    async def engage(self, stream: EngageStream) -> None:
        """Serve one Engage stream: a TryCall, its body, the response and ``CallFinished``.

        A detached call, once acknowledged (202), runs to its end in a task of its own: the
        load balancer's stream or process going away does not stop it.

        Raises:
            ProtocolViolation: If the load balancer broke the protocol; the transport ends
                the stream with an error status carrying the message.
        """
        self._received += 1
        self._active += 1
        self._idle.clear()
        outcome = "done"
        try:
            first = await stream.recv()
            if first is None or first.WhichOneof("body") != "try":
                raise ProtocolViolation("Protocol failure: expected ClientMsg_Try")
            result = await self._try_call(stream, getattr(first, "try"))
            if isinstance(result, asyncio.Task):
                outcome = "detached"
                # Shielded: when the load balancer's stream goes, this handler is cancelled,
                # the call is not.
                await asyncio.shield(result)
            else:
                outcome = result
        finally:
            if outcome != "detached":  # a detached call's task ends its own accounting
                self._call_ended(nacked=outcome == "nacked")

    def _call_ended(self, *, nacked: bool) -> None:
        self._active -= 1
        if not nacked:
            self._handled += 1
        if self._active == 0:
            self._idle.set()

    async def _try_call(
        self, stream: EngageStream, try_call: pb.TryCall
    ) -> str | asyncio.Task[None]:
        """Run the call if it is admitted; return ``"nacked"`` or ``"done"``.

        A detached call is handed to a task of its own, returned, which ends its accounting.
        """
        received = time.monotonic()
        try:
            model = Call.from_json(try_call.models_call_json)
        except ValueError as exc:
            # Fn reports undecodable input with error code 0.
            error = ValueError(f"malformed models_call_json: {exc}")
            await self._reject(stream, Call(), error, received)
            return "done"
        slot_key: bytes | None = None
        if try_call.slot_hash_id:
            try:
                slot_key = bytes.fromhex(try_call.slot_hash_id)
            except ValueError as exc:
                await self._reject(
                    stream, model, ValueError(f"invalid slot_hash_id: {exc}"), received
                )
                return "done"
        # As Fn's runner: the call is created here, and has not started yet.
        model.created_at = datetime.now(UTC)
        model.started_at = model.completed_at = None
        detached = model.type == "detached"
        if detached and not self._detached:
            await self._reject(stream, model, _DETACH_UNSUPPORTED, received)
            return "done"
        problem = _invalid(model)
        if problem is None and not self.capacity.can_ever_fit(model.memory):
            problem = _CANNOT_ALLOCATE
        if problem is not None:
            await self._reject(stream, model, problem, received)
            return "done"
        trace = _tracing.active
        try:
            if trace is None:
                admission = (
                    None
                    if self.draining
                    else self.executor.admit(model, slot_key, try_call.extensions, self.capacity)
                )
            else:
                admission = trace.admit(
                    self.executor,
                    model,
                    slot_key,
                    try_call.extensions,
                    self.capacity,
                    self.draining,
                )
        except APIError as exc:
            await self._reject(stream, model, exc, received)
            return "done"
        if admission is None:
            # The NACK: not taken, so the load balancer tries another runner.
            self.metrics.nacked(self._nack_reason())
            await self._finish(stream, model, ServerBusyError(), received)
            return "nacked"
        self.metrics.admitted()
        if detached:
            return await self._detach(stream, model, try_call, slot_key, received, admission)
        try:
            await self._run(stream, model, try_call, slot_key, False, received, admission)
        finally:
            admission.release()
        return "done"

    async def _detach(
        self,
        stream: EngageStream,
        model: Call,
        try_call: pb.TryCall,
        slot_key: bytes | None,
        received: float,
        admission: Admission,
    ) -> str | asyncio.Task[None]:
        """Read a detached call's whole body, then start it in a task the stream cannot cancel.

        The body is read before the 202 is sent, so that once the load balancer has its
        acknowledgement the call needs nothing more from it.
        """
        try:
            body = [
                chunk async for chunk in request_body(stream, self._max_request, asyncio.Event())
            ]
        except RequestTooLargeError as exc:
            admission.release()
            self.metrics.ended(call_outcome(exc), time.monotonic() - received)
            await self._finish(stream, model, exc, received)
            return "done"
        except BaseException:
            admission.release()
            raise
        task = asyncio.create_task(
            self._run_detached(stream, model, try_call, slot_key, received, admission, body)
        )
        self._detached_calls.add(task)
        task.add_done_callback(self._detached_calls.discard)
        return task

    async def _run_detached(
        self,
        stream: EngageStream,
        model: Call,
        try_call: pb.TryCall,
        slot_key: bytes | None,
        received: float,
        admission: Admission,
        body: list[bytes],
    ) -> None:
        try:
            await self._run(
                _DetachedStream(stream, body), model, try_call, slot_key, True, received, admission
            )
        except Exception:
            logger.exception("Detached call %s failed", model.id, extra={"call_id": model.id})
        finally:
            admission.release()
            self._call_ended(nacked=False)

    async def _run(
        self,
        stream: EngageStream,
        model: Call,
        try_call: pb.TryCall,
        slot_key: bytes | None,
        detached: bool,
        received: float,
        admission: Admission,
    ) -> None:
        writer = StreamResponseWriter(stream, self._max_response, detached)
        body_done = asyncio.Event()
        started = time.monotonic()
        model.started_at = datetime.now(UTC)
        if detached:
            # The LB answers its client 202 when this arrives: the call has started.
            meta = pb.HttpRespMeta(status_code=202)
            await stream.send(pb.RunnerMsg(result_start=pb.CallResultStart(http=meta)))
        execution = Execution(
            model=model,
            extensions=dict(try_call.extensions),
            slot_key=slot_key,
            body=request_body(stream, self._max_request, body_done),
            response=writer,
            stderr=io.BytesIO(),
            deadline=started + model.timeout,
            detached=detached,
            admission=admission,
        )
        error: BaseException | None = None
        trace = _tracing.active
        # "error" unless the call ends below: cut by a protocol violation or a cancellation.
        outcome = "error"
        try:
            try:
                async with asyncio.timeout(model.timeout + _TIMEOUT_GRACE):
                    if trace is None:
                        await self.executor.execute(execution)
                    else:
                        await trace.execute(self.executor, execution)
                await writer.start()
            except ProtocolViolation:
                raise
            except TimeoutError:
                error = CallTimeoutError()
            except APIError as exc:
                error = exc
            except Exception as exc:
                logger.exception(
                    "Executor failed on call %s", model.id, extra={"call_id": model.id}
                )
                error = FunctionFailedError()
                error.__cause__ = exc
            outcome = call_outcome(error)
        finally:
            self.metrics.ended(outcome, time.monotonic() - started)
        model.completed_at = datetime.now(UTC)
        await stream.send(finished_message(model, error, received, started, time.monotonic()))

    async def _finish(
        self, stream: EngageStream, model: Call, error: BaseException, received: float
    ) -> None:
        await stream.send(finished_message(model, error, received, None, time.monotonic()))

    async def _reject(
        self, stream: EngageStream, model: Call, error: BaseException, received: float
    ) -> None:
        """End a call that is not admitted and not NACKed: the input is wrong for any runner."""
        self.metrics.ended("rejected")
        await self._finish(stream, model, error, received)

    def _nack_reason(self) -> str:
        """Why the call just refused was: the first limit that is reached."""
        capacity = self.capacity
        if self.draining:
            return "draining"
        if capacity.max_calls is not None and capacity.calls >= capacity.max_calls:
            return "concurrency"
        # The executor refused with a free call slot: memory, if there is a limit at all.
        return "executor" if capacity.memory_mb is None else "memory"

    # -- Status and hooks ---------------------------------------------------------------------

    async def status(self, payload: Mapping[str, object] | None = None) -> RunnerStatus:
        """Return the runner's status: live counters, and the cached health check if any."""
        capacity = self.capacity
        usage = {
            "memory_capacity_mb": "unlimited"
            if capacity.memory_mb is None
            else str(capacity.memory_mb),
            "memory_used_mb": str(capacity.used_mb),
            "max_calls": "unlimited" if capacity.max_calls is None else str(capacity.max_calls),
            "calls": str(capacity.calls),
        }
        live = RunnerStatus(
            active_request_count=self._active,
            requests_received=self._received,
            requests_handled=self._handled,
            is_network_disabled=not self._network_ok(),
        )
        executor_report = {
            **usage,
            **(self.executor.report() if isinstance(self.executor, Reporting) else {}),
        }
        if self._health is None:
            return replace(live, custom_status=executor_report)
        report = await self._health.get({} if payload is None else payload)
        # The counters are always live; the rest is the (possibly cached) health check.
        return replace(
            report,
            active_request_count=live.active_request_count,
            requests_received=live.requests_received,
            requests_handled=live.requests_handled,
            custom_status={**executor_report, **report.custom_status},
        )

    async def configure(self, config: Mapping[str, str]) -> None:
        """Pass a ``ConfigureRunner`` map to the configure hook, or log it (Fn's default)."""
        if self._configure is None:
            logger.warning("ConfigureRunner called but no configure hook is set; ignored")
            return
        await self._configure(config)

    def _network_ok(self) -> bool:
        return self._barrier is None or os.path.lexists(self._barrier)

    # -- Drain ---------------------------------------------------------------------------------

    def start_drain(self) -> None:
        """Refuse new calls with the NACK from now on; calls in flight go on."""
        self.draining = True

    async def wait_idle(self) -> None:
        """Wait until no call is in flight."""
        await self._idle.wait()


def _invalid(model: Call) -> APIError | None:
    """Return the error of a call this runner can never run as given, if it is one."""
    if not valid_image(model.image):
        return _INVALID_IMAGE
    if model.timeout <= 0:
        return _INVALID_TIMEOUT
    return None
