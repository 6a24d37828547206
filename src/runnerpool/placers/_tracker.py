"""The placer tracker: attempts, deadlines, back-off and metrics of one placement.

The port of Go's ``placer_tracker.go`` and its ``attemptTracker``. Go holds two contexts: the
request's and the placer's (a timeout *not* derived from the request). Here both are absolute
times on the event loop's clock, checked between attempts; the request's deadline also bounds
each attempt, while the placer's never does.

The clock, the back-off's randomness and the metric views come from the placer's
:class:`~runnerpool.placers.PlacerRuntime`: by default ``time.monotonic()``, which is what
asyncio's event loops return from ``loop.time()`` (uvloop reads the same monotonic clock, to
the millisecond), a shared generator, and the registered views. The simulator passes its
virtual loop's clock instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from typing import TYPE_CHECKING

from .. import _tracing
from .._context import placement
from .._errors import FuncError, NotPlacedError, RunnerBusyError
from ._fifo import FifoQueue
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall
    from ._busy import BusyRunners

__all__ = ["PlacerTracker", "backoff_delay"]

logger = logging.getLogger(__name__)

# 2.0**1000 is finite, so the ceiling below is a float (perhaps inf) and never an
# OverflowError, however many passes a long placer timeout allows.
_MAX_EXPONENT = 1000


def backoff_delay(attempt_pass: int, base: float, cap: float, rng: random.Random) -> float:
    """Return the wait after pass ``attempt_pass`` of an exponential back-off with full jitter.

    The wait is uniform in ``[0, min(cap, base * 2**(attempt_pass - 1))]`` ("Exponential
    Backoff And Jitter", AWS Architecture Blog, 2015): the ceiling doubles after every pass
    until it reaches the cap, and the jitter spreads placers that back off at the same time.

    Args:
        attempt_pass: The pass that just ended with every runner refusing, from 1.
        base: The ceiling after the first pass, in seconds.
        cap: The largest ceiling, in seconds.
        rng: The source of randomness.

    Returns:
        The wait in seconds.

    Raises:
        ValueError: If ``attempt_pass`` is below 1.
    """
    if attempt_pass < 1:
        raise ValueError(f"attempt_pass must be >= 1, got {attempt_pass}")
    ceiling = base * 2.0 ** min(attempt_pass - 1, _MAX_EXPONENT)
    return rng.uniform(0.0, min(cap, ceiling))


class PlacerTracker:
    """Tracks one placement: when to stop, how to classify each attempt, what to record.

    Create it at the start of ``place_call``; call :meth:`done` once at the end, whatever
    happened.

    Args:
        config: The placer's configuration.
        call: The call being placed. Its ``deadline`` is the request's deadline; a
            ``"detached"`` model type selects ``config.detached_placer_timeout``.
        busy: The placer's :class:`~runnerpool.placers._busy.BusyRunners`, for the ``"release"``
            back-off mode (keyword only). Without it that mode waits as ``"exponential"``
            does and passes over no runner.
        runtime: The clock, the back-off's randomness and the metric views (keyword only):
            the placer's; :data:`~runnerpool.placers._runtime.DEFAULT_RUNTIME` by default.
    """

    __slots__ = (
        "_attempts",
        "_backoff_passes",
        "_busy",
        "_cancelled",
        "_clock",
        "_config",
        "_last_attempt",
        "_limit",
        "_placed",
        "_placer_deadline",
        "_record",
        "_request_deadline",
        "_rng",
        "_start",
        "_tags",
        "_ticket",
        "_timed",
        "_views",
    )

    def __init__(
        self,
        config: PlacerConfig,
        call: RunnerCall,
        *,
        busy: BusyRunners | None = None,
        runtime: PlacerRuntime = DEFAULT_RUNTIME,
    ) -> None:
        self._clock = clock = runtime.clock
        self._rng = runtime.rng
        self._start = self._last_attempt = now = clock()
        self._config = config
        self._busy = busy
        self._placer_deadline = now + (
            config.detached_placer_timeout
            if call.model.type == "detached"
            else config.placer_timeout
        )
        placer_deadline = self._placer_deadline
        deadline = call.deadline
        # _timed: whether attempts run under a timeout (read on every attempt). The limit is a
        # comparison, not min(): a builtin call costs more, on every placement.
        if deadline is None or deadline == math.inf:
            self._timed = False
            self._request_deadline = math.inf
            self._limit = placer_deadline
        else:
            self._timed = True
            self._request_deadline = deadline
            self._limit = deadline if deadline < placer_deadline else placer_deadline
        self._attempts = 0
        self._placed = self._cancelled = False
        self._ticket: int | None = None  # the call's place in a "fifo" queue
        views = self._views = runtime.views()
        self._tags = () if views is None else views.call_tags(call.model)
        # The front end's record of this placement (its access log): attempts are read from
        # here, live. Kept for committed(), which runs in the same task's context.
        self._record = record = placement.get()
        if record is not None:
            record.tracker = self
            record.fn_id = call.model.fn_id

    @property
    def attempts(self) -> int:
        """How many runners were tried so far."""
        return self._attempts

    def is_done(self) -> bool:
        """Return whether the placer's timeout or the request's deadline has passed."""
        return self._clock() >= self._limit

    def placer_expired(self) -> bool:
        """Return whether the placer's timeout has passed."""
        return self._clock() >= self._placer_deadline

    def request_expired(self) -> bool:
        """Return whether the request's deadline has passed."""
        return self._clock() >= self._request_deadline

    def passes_over(self, runner: Runner, call: RunnerCall) -> bool:
        """Return whether to skip the runner, without offering it the call, in this pass.

        Only in the ``"release"`` and ``"fifo"`` back-off modes: a runner that refused a
        call as large as this one as busy, less than ``release_hold`` ago and with none of
        this placer's calls on it ended since, is passed over, in every pass of the call,
        its first too. (Skipping only after a call's first pass, as first proposed, left 4.9
        to 5.1 attempts per call at 90% utilisation, against 2.7: docs/benchmarks.md.) In
        the ``"fifo"`` mode, while calls wait, a call not yet in the queue passes over every
        runner, to take its place behind them.
        """
        busy = self._busy
        if busy is None:
            return False
        # In the "fifo" mode a call that has no place in the queue does not go before those
        # that wait: while any call waits, it tries no runner and takes its place at the back.
        if self._ticket is None and busy.waiting and isinstance(busy, FifoQueue):
            return True
        return busy.held(runner.address, call.model.memory, self._clock())

    def mark_cancelled(self) -> None:
        """Record that the client cancelled the placement (the task was cancelled)."""
        self._cancelled = True

    def attempt_started(self) -> asyncio.Timeout | None:
        """Count an attempt that is about to start, and return the timeout to run it under.

        IMPORTANT: an attempt is bounded by the request's deadline only, never by the
        placer's timeout. The placer timeout bounds the search for a runner; once a runner
        has taken the call, the call runs for as long as its client allows.

        Returns:
            A timeout at the request's deadline, or ``None`` when the request has none.
        """
        self._attempts += 1
        if self._views is not None:  # the attempt's start only feeds the latency metric
            self._last_attempt = self._clock()
        return asyncio.timeout_at(self._request_deadline) if self._timed else None

    def not_placed(
        self,
        runner: Runner,
        call: RunnerCall,
        error: NotPlacedError,
        timeout: asyncio.Timeout | None,
    ) -> None:
        """Record a runner's refusal; the placer goes on to the next runner.

        Args:
            runner: The runner that refused.
            call: The call.
            error: The refusal.
            timeout: The attempt's timeout, if any.
        """
        views = self._views
        if isinstance(error, RunnerBusyError):
            if self._busy is not None:
                self._busy.refused(runner.address, call.model.memory, self._clock())
            if views is not None:
                views.retry_busy_count.record(views.runner_tags(self._tags, runner.address))
            return
        # Go records nothing when the refusal is the request's own deadline error: the
        # attempt was cut short, the runner did not fail.
        if views is not None and not (timeout is not None and timeout.expired()):
            views.retry_error_count.record(views.runner_tags(self._tags, runner.address))
        logger.debug(
            "Runner %s did not take the call: %r",
            runner.address,
            error,
            extra={"runner_addr": runner.address, "call_id": call.model.id},
        )

    def committed(
        self,
        error: BaseException | None,
        timeout: asyncio.Timeout | None,
        runner: Runner | None = None,
        call: RunnerCall | None = None,
    ) -> None:
        """Record that a runner took the call, which then succeeded or failed with ``error``.

        A cancellation, or the request's deadline passing, counts as an abort. Given the
        runner and the call, the ``"release"`` back-off mode records that the call's capacity
        on that runner is free again. Given the runner, the front end's record of the placement
        (:data:`~runnerpool._context.placement`), if any, names it.
        """
        self._placed = True
        if runner is not None:
            record = self._record
            if record is not None:
                record.runner = runner.address
        if self._busy is not None and runner is not None and call is not None:
            self._busy.released(runner.address, call.model.memory, self._clock())
        views = self._views
        if views is None:
            return
        tags = views.runner_tags(self._tags, "" if runner is None else runner.address)
        if error is None:
            views.placed_ok_count.record(tags)
        elif isinstance(error, asyncio.CancelledError) or (
            timeout is not None and timeout.expired()
        ):
            views.placed_abort_count.record(tags)
        else:
            views.placed_error_count.record(tags)

    async def try_runner(self, runner: Runner, call: RunnerCall) -> bool:
        """Offer the call to one runner and classify the outcome (Go's ``TryRunner``).

        For placers written from scratch. :class:`~runnerpool.BasePlacer` runs the same
        steps inline, saving a coroutine per attempt.

        Returns:
            ``True`` if the runner took the call and it succeeded; ``False`` if the runner
            did not take it, so the next runner may be tried.

        Raises:
            Exception: The error of a call the runner took (committed): never retried. A
                call cut by the request's deadline raises :class:`TimeoutError`.
            asyncio.CancelledError: If the client cancelled.
        """
        timeout = self.attempt_started()
        trace = _tracing.active
        attempt = runner.try_exec(call) if trace is None else trace.attempt(runner, call)
        try:
            if timeout is None:
                await attempt
            else:
                async with timeout:
                    await attempt
        except NotPlacedError as exc:
            self.not_placed(runner, call, exc, timeout)
            return False
        except BaseException as exc:
            self.committed(exc, timeout, runner, call)
            raise
        self.committed(None, timeout, runner, call)
        return True

    async def retry_all_backoff(
        self,
        runner_count: int,
        pool_error: BaseException | None,
        call: RunnerCall | None = None,
    ) -> bool:
        """Wait after a pass in which no runner took the call; say whether to try again.

        The wait is ``retry_all_delay`` in the ``"fixed"`` back-off mode (Fn's rule), and
        :func:`backoff_delay` of the passes so far in the ``"exponential"`` and
        ``"release"`` modes; in the ``"release"`` mode (given the call) a release ends the
        wait early. In the ``"fifo"`` mode (given the call) the call waits in its place in
        the placer's :class:`~runnerpool.placers._fifo.FifoQueue`, at most ``release_hold``. Either
        way it never goes past the placer's timeout or the request's deadline.

        Returns:
            ``False`` to stop: a user's 502 with no runners (fail fast), or the placer's
            timeout or the request's deadline passed before or during the wait, or (in the
            ``"fifo"`` mode) the queue is full or cannot serve the call before either. ``True``
            after the wait, to start the next pass.
        """
        if runner_count == 0:
            if self._views is not None:
                self._views.rp_empty_count.record(self._tags)
            # Fail fast: with no runner to try, a user's 502 will not go away by waiting.
            # Go requires all four: no runners, an error, a FuncError, code 502.
            if isinstance(pool_error, FuncError) and pool_error.status_code == 502:
                return False
        config = self._config
        if config.backoff == "fixed":
            delay = config.retry_all_delay
        else:
            # The pass count lives here, not in __init__: the fixed mode pays nothing for it.
            passes = self._backoff_passes = getattr(self, "_backoff_passes", 0) + 1
            delay = backoff_delay(
                passes, config.retry_all_delay, config.backoff_max_delay, self._rng
            )
        now = self._clock()
        limit = self._limit
        busy = self._busy
        if busy is not None and call is not None:
            # IMPORTANT: the placer timeout stays the hard stop: a wait for a release never
            # outlasts it.
            if limit <= now:
                return False
            if isinstance(busy, FifoQueue):
                return await self._wait_in_queue(busy, call, now, limit)
            woken = await busy.wait(call.model.memory, min(delay, limit - now))
            return woken or now + delay < limit
        if now + delay >= limit:
            if limit > now:
                await asyncio.sleep(limit - now)
            return False
        await asyncio.sleep(delay)
        return True

    async def _wait_in_queue(
        self, queue: FifoQueue, call: RunnerCall, now: float, limit: float
    ) -> bool:
        # The call keeps one ticket, its place in the queue, from its first wait to its end.
        ticket = self._ticket
        if ticket is None:
            ticket = self._ticket = queue.join(now, limit - now)
            if ticket is None:
                return False  # full, or it cannot serve this call in time: the 503 now
        elif queue.hopeless(ticket, now, limit - now):
            return False
        clock = self._clock
        await queue.wait_turn(ticket, call.model.memory, clock, min(queue.hold, limit - now))
        return clock() < limit

    def handle_find_runners_failure(self, error: BaseException) -> None:
        """Record that placement failed with the pool's error.

        The port of Go's ``HandleFindRunnersFailure``.
        """
        logger.warning("Failed to find runners for call: %r", error)
        if self._views is not None:
            self._views.rp_error_count.record(self._tags)

    def done(self) -> None:
        """Record the end of the placement: client outcome, placer timeout, attempts, latency."""
        views = self._views
        if views is None:
            return
        now = self._clock()
        tags = self._tags
        if self._cancelled:
            views.client_cancelled_count.record(tags)
        elif now >= self._request_deadline:
            views.client_timeout_count.record(tags)
        if not self._placed and now >= self._placer_deadline:
            views.timeout_count.record(tags)
        views.attempt_count.record(tags, self._attempts)
        # IMPORTANT: a committed call's latency ends where its committing attempt started:
        # the time the call then spent running is the function's, not the placer's.
        end = self._last_attempt if self._placed else now
        views.latency.record(tags, int((end - self._start) * 1000))
