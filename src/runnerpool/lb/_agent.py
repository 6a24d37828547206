"""The load balancer's agent: admits calls, places them, and accounts for them.

The port of Fn's ``lb_agent.go``: a front gate that closes on shutdown, the ``queued`` /
``running`` accounting, the placement of sync calls, and detached calls, which are answered
202 as soon as a runner starts them and keep running after their client has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import metrics
from .._call import BufferedResponse
from .._context import placement
from .._errors import APIError, ServerBusyError
from .._resource import AsyncResource, aclose_resource
from .._tasks import watch

if TYPE_CHECKING:
    from .._call import BufferedCall
    from .._interfaces import Placer, RunnerPool
    from ..metrics import LBAgentViews

__all__ = ["DetachedResponse", "DrainCancelledError", "LBAgent", "ReservationExpiredError"]

logger = logging.getLogger(__name__)

#: Reads a call's request body; a ``bytearray`` is kept as it is (the body is held once).
BodyReader = Callable[[], Awaitable[bytes | bytearray]]

#: Extra time a detached call may take beyond its placer timeout and its own timeout
#: (Fn's ``FN_EXECUTION_HEADROOM``, 360 s by default).
DEFAULT_DETACHED_HEADROOM = 360.0


class ReservationExpiredError(APIError):
    """Raised when a detached call's reservation ran out (Fn's 500 service reservation failure)."""

    default_status_code = 500
    default_message = "Unable to service the request for the reservation period"


class DrainCancelledError(APIError):
    """Raised when the load balancer's drain timeout cancelled a call still in flight.

    A 500, not a 503: the call may have started on its runner, so it is not safe to retry.
    """

    default_status_code = 500
    default_message = "Call cancelled: the load balancer stopped before it ended"


class DetachedResponse(BufferedResponse):
    """The response writer of a detached call: it only waits for the runner's 202.

    The runner sends ``result_start`` 202 as soon as the call starts; that acknowledgement is
    what the load balancer's client gets. The function's output and headers are not kept.
    The HTTP front end builds a detached call with one (:meth:`LBAgent.submit_detached`
    requires it).
    """

    def __init__(self) -> None:
        super().__init__(max_size=0)
        self.acknowledged = asyncio.Event()

    def add_header(self, name: str, value: str) -> None:
        """Ignore headers: the client gets the acknowledgement only."""

    def write_header(self, status_code: int) -> None:
        """Record the runner's acknowledgement."""
        self.status_code = status_code
        self.acknowledged.set()

    async def write(self, data: bytes) -> None:
        """Discard output: the client is not waiting for it."""


class LBAgent(AsyncResource):
    """Admits, places and accounts for the load balancer's calls.

    Args:
        placer: How calls choose runners.
        pool: The runners.
        detached_headroom: Extra seconds a detached call may take beyond its placer timeout
            and its own timeout before its reservation expires.

    The agent owns the pool: :meth:`aclose` (or the end of ``async with``) closes it.
    """

    def __init__(
        self,
        placer: Placer,
        pool: RunnerPool,
        *,
        detached_headroom: float = DEFAULT_DETACHED_HEADROOM,
    ) -> None:
        self.placer = placer
        self.pool = pool
        self._headroom = detached_headroom
        self._closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()
        self._calls: set[asyncio.Task[object]] = set()
        self._cancelling = False

    @property
    def closing(self) -> bool:
        """Whether the front gate is closed (new calls get 503)."""
        return self._closing

    async def submit(self, call: BufferedCall, read_body: BodyReader) -> None:
        """Run a sync call: read its body, place it, and return once it succeeded.

        Args:
            call: The call; its ``body`` is set from ``read_body``.
            read_body: Reads the request body (it may raise, e.g. when it is too large).

        Raises:
            ServerBusyError: If the load balancer is closing, or no runner took the call.
            Exception: The call's own error.
            asyncio.CancelledError: If the client went away.
        """
        views, tags = self._begin(call)
        try:
            with self._cancellable():
                await self._start(call, read_body, views, tags)
                await self._place(call, views, tags)
        finally:
            self._leave()

    async def submit_detached(self, call: BufferedCall, read_body: BodyReader) -> None:
        """Start a detached call; return once a runner acknowledged it (the client gets 202).

        Placement goes on in the background after this returns, under a reservation of the
        detached placer timeout, plus the function's timeout, plus the headroom; the client
        leaving does not stop it.

        Args:
            call: The call; its response writer must be a :class:`DetachedResponse`.
            read_body: Reads the request body.

        Raises:
            TypeError: If the call's response writer is not a :class:`DetachedResponse`.
            ServerBusyError: If the load balancer is closing, or no runner took the call.
            Exception: The call's error, if it ended before any acknowledgement.
            asyncio.CancelledError: If the client went away before the acknowledgement.
        """
        if not isinstance(call.response_writer, DetachedResponse):
            raise TypeError("a detached call's response writer must be a DetachedResponse")
        with self._cancellable():
            await self._submit_detached(call, read_body)

    async def _submit_detached(self, call: BufferedCall, read_body: BodyReader) -> None:
        response = call.response_writer
        assert isinstance(response, DetachedResponse)  # checked by submit_detached
        views, tags = self._begin(call)
        try:
            await self._start(call, read_body, views, tags)
        except BaseException:
            self._leave()
            raise
        reservation = (
            self.placer.config.detached_placer_timeout + call.model.timeout + self._headroom
        )
        call.deadline = time.monotonic() + reservation
        task = asyncio.create_task(self._place_detached(call, views, tags))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        acknowledged = asyncio.ensure_future(response.acknowledged.wait())
        try:
            await asyncio.wait({task, acknowledged}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The client left before the acknowledgement: the placement goes on, and nobody
            # is left to get its error.
            watch(
                task,
                logger,
                "Detached call %s failed after its client left",
                call.model.id,
                extra={"call_id": call.model.id, "fn_id": call.model.fn_id},
            )
            raise
        finally:
            acknowledged.cancel()
        if not response.acknowledged.is_set():
            task.result()  # placement ended first: its error is the client's answer
        record = placement.get()
        if record is not None:
            # The client's answer is this acknowledgement: its runner is the one to log.
            record.runner = call.runner_address

    @contextlib.contextmanager
    def _cancellable(self) -> Iterator[None]:
        """Let :meth:`cancel_calls` cancel the current task.

        Its cancellation then raises :class:`DrainCancelledError`, the client's answer.
        """
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self._cancelling or not task.cancelling():
                raise
            task.uncancel()
            raise DrainCancelledError from None
        finally:
            self._calls.discard(task)

    def _begin(self, call: BufferedCall) -> tuple[LBAgentViews | None, tuple[str, ...]]:
        """Admit a new call: count it (503 while closing), then hold it in flight."""
        views = metrics.lb_agent_views()
        tags = () if views is None else views.call_tags(call.model)
        if views is not None:
            views.calls.record(tags)
        if self._closing:
            if views is not None:
                views.server_busy.record(tags)
            raise ServerBusyError
        self._enter()
        return views, tags

    async def _start(
        self,
        call: BufferedCall,
        read_body: BodyReader,
        views: LBAgentViews | None,
        tags: tuple[str, ...],
    ) -> None:
        if views is not None:
            views.queued.add(tags, 1)
        try:
            call.body = await read_body()
        except BaseException as exc:
            if views is not None:
                views.queued.add(tags, -1)
            self._account(call, exc, views, tags)
            raise
        call.model.started_at = datetime.now(UTC)
        call.model.status = "running"
        if views is not None:
            views.queued.add(tags, -1)
            views.running.add(tags, 1)

    async def _place(
        self, call: BufferedCall, views: LBAgentViews | None, tags: tuple[str, ...]
    ) -> None:
        error: BaseException | None = None
        try:
            await self.placer.place_call(self.pool, call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if views is not None:
                views.running.add(tags, -1)
            self._account(call, error, views, tags)

    async def _place_detached(
        self, call: BufferedCall, views: LBAgentViews | None, tags: tuple[str, ...]
    ) -> None:
        try:
            await self._place(call, views, tags)
        except Exception as exc:
            error = ReservationExpiredError() if isinstance(exc, TimeoutError) else exc
            if call.response_writer.status_code is None:
                raise error from None  # no acknowledgement yet: the client gets this error
            # The client already has its 202: nobody awaits this task, so log, do not raise.
            logger.warning(
                "Detached call %s failed after its acknowledgement: %r",
                call.model.id,
                error,
                extra={"call_id": call.model.id, "fn_id": call.model.fn_id},
            )
        finally:
            self._leave()

    def _account(
        self,
        call: BufferedCall,
        error: BaseException | None,
        views: LBAgentViews | None,
        tags: tuple[str, ...],
    ) -> None:
        """End the call: its model's status and times, the metrics, a debug log line."""
        model = call.model
        now = datetime.now(UTC)
        model.completed_at = now
        if error is None:
            status, model.status = "completed", "success"
        elif isinstance(error, asyncio.CancelledError):
            status, model.status = "canceled", "cancelled"
        elif isinstance(error, TimeoutError):
            status, model.status = "timeouts", "timeout"
        elif isinstance(error, ServerBusyError):
            status, model.status = "server_busy", "error"
        else:
            status, model.status = "errors", "error"
        if error is not None and not isinstance(error, asyncio.CancelledError):
            model.error = str(error) or type(error).__name__
        if views is not None:
            getattr(views, status).record(tags)
            timings = call.runner_timings
            if timings is not None:
                # Fn's recordFinishStats: the runner's own timings, in ms, when it gave them;
                # labelled with that runner when the views have the runner tag.
                runner_tags = views.runner_tags(tags, call.runner_address or "")
                if timings.scheduler_duration:
                    views.runner_sched_latency.record(
                        runner_tags, timings.scheduler_duration // 10**6
                    )
                if timings.execution_duration:
                    views.runner_exec_latency.record(
                        runner_tags, timings.execution_duration // 10**6
                    )
            start = model.started_at or model.created_at
            if start is not None:
                # Fn's lb_call_latency: the load balancer's share, without the user's code.
                elapsed = (now - start).total_seconds() - (call.user_execution_time or 0.0)
                views.call_latency.record((status, *tags), max(0, int(elapsed * 1000)))
        # The placement's runner, where the front end keeps one, is the runner that took the
        # call (for a detached call, the one that acknowledged it); else the call's own.
        record = placement.get()
        # DEBUG: the access log has a line per call at INFO already.
        logger.debug(
            "Call %s ended: %s",
            model.id,
            status,
            extra={
                "call_id": model.id,
                "fn_id": model.fn_id,
                "call_status": status,
                "runner_addr": call.runner_address if record is None else record.runner,
            },
        )

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def close_gate(self) -> None:
        """Close the front gate: from now on new calls get 503."""
        self._closing = True

    @property
    def in_flight(self) -> int:
        """Calls admitted and not ended (detached ones too)."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Return once no call is in flight."""
        await self._idle.wait()

    def cancel_calls(self) -> int:
        """Cancel every call in flight; return how many tasks were cancelled.

        A sync call's client gets :class:`DrainCancelledError` (500); a detached call that
        was acknowledged just ends.
        """
        self._cancelling = True
        tasks = [task for task in (*self._calls, *self._background) if not task.done()]
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def aclose(self) -> None:
        """Close the gate, let every call in flight (detached ones too) finish, close the pool.

        Closing twice is harmless (if the pool's own close is).
        """
        self.close_gate()
        await self._idle.wait()
        await aclose_resource(self.pool, "shutdown")
