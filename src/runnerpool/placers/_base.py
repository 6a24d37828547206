"""The placement loop every placer shares; placers differ only in the order they try runners.

The port of the loop that Go repeats in each placer (``ch_placer.go``, ``naive_placer.go``).
"""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .. import _tracing
from .._config import PlacerConfig
from .._errors import (
    NoRunnerReachableError,
    NotPlacedError,
    PartialRunnersError,
    RunnerUnavailableError,
    ServerBusyError,
)
from .._interfaces import Placer
from ._busy import BusyRunners
from ._fifo import FifoQueue
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime
from ._tracker import PlacerTracker

if TYPE_CHECKING:
    from .._interfaces import Runner, RunnerCall, RunnerPool

__all__ = ["BasePlacer"]


class BasePlacer(Placer, ABC):
    """A placer that tries runners pass after pass until one takes the call.

    Each pass asks the pool for its runners (so the list may change between passes), tries
    runners in the order :meth:`runner_order` gives, and stops at the first runner that takes
    the call: from then on the call is committed and its outcome is final. After a pass in
    which no runner took it, the placer waits ``retry_all_delay`` and starts the next pass,
    until the placer's timeout or the call's deadline.

    Subclasses choose the order: override :meth:`start_index` to keep linear probing from
    another start, or :meth:`runner_order` for any other order.

    A runner whose ``ejected`` attribute is true (see :class:`~runnerpool.pools.RunnerHealth`)
    is passed over, as after a NACK: the order of the others does not change. When a whole
    pass reached no runner (each was ejected or unreachable), placement stops at once with
    :class:`~runnerpool.NoRunnerReachableError` rather than waiting for the placer timeout.

    In the ``"release"`` back-off mode the placer also remembers the runners that refused
    its calls (shared by all its calls: this load balancer's view), passes over them in a
    call's passes until one of its calls on them ends, and wakes a waiting call at
    each such release (see :class:`PlacerConfig`). The ``"fifo"`` mode does the same with a
    bounded queue in which waiting calls keep their arrival order.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The clock, the back-off's randomness and the metric views (keyword only);
            the monotonic clock, a shared generator and the registered views when omitted.
            Every time the placer and its trackers read comes from ``runtime.clock``.
    """

    __slots__ = ("_busy", "_config", "_runtime")

    def __init__(
        self, config: PlacerConfig | None = None, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
    ) -> None:
        self._config = config = PlacerConfig() if config is None else config
        self._runtime = runtime
        self._busy: BusyRunners | None = (
            FifoQueue(config.release_hold, config.queue_limit)
            if config.backoff == "fifo"
            else BusyRunners(config.release_hold)
            if config.backoff == "release"
            else None
        )

    @property
    def config(self) -> PlacerConfig:
        """The placer's timeouts and back-off."""
        return self._config

    @property
    def runtime(self) -> PlacerRuntime:
        """The placer's clock, back-off randomness and metric views."""
        return self._runtime

    def start_index(self, call: RunnerCall, runner_count: int) -> int:
        """Return the index of the first runner to try in a pass (``runner_count > 0``).

        The default starts at the first runner.
        """
        return 0

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterable[int]:
        """Return the indices of the runners to try in this pass, in order.

        Indices are taken modulo ``len(runners)``, so ``range(start, start + n)`` is linear
        probing from ``start``, wrapping around. Each runner should appear once, so that a
        pass tries every runner. The default is linear probing from :meth:`start_index`.
        """
        start = self.start_index(call, len(runners))
        return range(start, start + len(runners))

    async def place_call(self, pool: RunnerPool, call: RunnerCall) -> None:
        """Find a runner that takes the call, and run it there.

        Raises:
            ServerBusyError: If no runner took the call before the placer's timeout or the
                call's deadline, and the pool's last answer was not an error.
            NoRunnerReachableError: If a whole pass reached no runner.
            Exception: The committed call's error, or else the pool's last error.
            TimeoutError: If the call's deadline cut a committed call.
            asyncio.CancelledError: If the caller cancelled.
        """
        busy = self._busy
        tracker = PlacerTracker(self._config, call, busy=busy, runtime=self._runtime)
        trace = _tracing.active  # None while tracing is off: one check per attempt
        # Bound once: these run on every attempt (an attribute lookup less each time).
        is_done = tracker.is_done
        attempt_started = tracker.attempt_started
        not_placed = tracker.not_placed
        try:
            while True:
                pool_error: BaseException | None = None
                try:
                    runners = await pool.runners(call)
                except PartialRunnersError as exc:
                    runners, pool_error = exc.runners, exc.error
                except Exception as exc:  # any pool failure is the pool's error, as in Go
                    runners, pool_error = (), exc
                count = len(runners)
                # Whether a runner answered in this pass (took the call or refused it), or
                # the pass was cut short: either way, not a pass that reached no runner.
                answered = count == 0
                if count:
                    for index in self.runner_order(call, runners):
                        if is_done():
                            answered = True
                            break
                        runner = runners[index % count]
                        if getattr(runner, "ejected", False):
                            continue  # passed over as after a NACK: the order stays
                        if busy is not None and tracker.passes_over(runner, call):
                            answered = True
                            continue
                        # The steps of PlacerTracker.try_runner, inline: a coroutine less per
                        # attempt is a quarter of a NACK's cost.
                        timeout = attempt_started()
                        attempt = (
                            runner.try_exec(call) if trace is None else trace.attempt(runner, call)
                        )
                        try:
                            if timeout is None:
                                await attempt
                            else:
                                async with timeout:
                                    await attempt
                        except NotPlacedError as exc:
                            not_placed(runner, call, exc, timeout)
                            if not isinstance(exc, RunnerUnavailableError):
                                answered = True
                            continue
                        except BaseException as exc:
                            tracker.committed(exc, timeout, runner, call)
                            raise
                        tracker.committed(None, timeout, runner, call)
                        return
                if not answered and pool_error is None:
                    raise NoRunnerReachableError
                if not await tracker.retry_all_backoff(count, pool_error, call):
                    break
            if pool_error is not None:
                tracker.handle_find_runners_failure(pool_error)
                raise pool_error
            raise ServerBusyError
        except asyncio.CancelledError:
            tracker.mark_cancelled()
            raise
        finally:
            tracker.done()
