"""What a placer reads from the world around it: the clock, back-off's randomness, its metrics.

Injected, not patched: a placer (and each :class:`~runnerpool.placers._tracker.PlacerTracker`
it starts) reads time only through :attr:`PlacerRuntime.clock`, draws back-off jitter only from
:attr:`PlacerRuntime.rng`, and records metrics only to the views :attr:`PlacerRuntime.views`
returns. The simulator gives its placers the virtual event loop's clock and a seeded generator
this way (``runnerpool.sim.virtual_runtime``); nothing swaps a module's ``monotonic``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import metrics

__all__ = ["DEFAULT_RUNTIME", "PlacerRuntime"]

#: Back-off jitter of every placer not given its own generator. One generator, shared: the
#: jitter only needs to differ between calls, not to be reproducible.
_SHARED_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class PlacerRuntime:
    """The clock, the randomness and the metric views a placer runs with.

    Attributes:
        clock: Returns seconds of a monotonic clock. It must be the running event loop's
            clock (``loop.time()``): a placement's deadlines are compared with it and its
            waits are asyncio timers. The default, :func:`time.monotonic`, is what asyncio's
            and uvloop's loops return, and costs 46 ns against 217 ns for finding the
            running loop first. Calls' ``deadline`` values must be on the same clock.
        rng: The source of exponential back-off's jitter.
        views: Returns the views the placer records its metrics to, or ``None`` to record
            nothing; called once per placement. The default,
            :func:`runnerpool.metrics.placer_views`, returns the views registered at that
            time, so views registered after the placer was made are used.
    """

    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default=_SHARED_RNG)
    views: Callable[[], metrics.PlacerViews | None] = metrics.placer_views


#: The runtime of placers given none: the monotonic clock, shared jitter, registered views.
DEFAULT_RUNTIME = PlacerRuntime()
