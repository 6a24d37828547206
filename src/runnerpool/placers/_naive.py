"""The naive placer: round robin, the port of Go's ``naive_placer.go``."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from ._base import BasePlacer
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import RunnerCall

__all__ = ["NaivePlacer"]


class NaivePlacer(BasePlacer):
    """Spreads calls over runners round robin.

    Every pass of every call starts one runner further on than the pass before it, so both
    calls and retries spread evenly. (Fn starts at the clock's nanosecond, modulo the runner
    count; a counter spreads at least as well and is deterministic.)

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The clock, back-off randomness and metric views; the monotonic clock,
            a shared generator and the registered views when omitted.
    """

    __slots__ = ("_counter",)

    def __init__(
        self, config: PlacerConfig | None = None, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
    ) -> None:
        super().__init__(config, runtime=runtime)
        self._counter = itertools.count()

    def start_index(self, call: RunnerCall, runner_count: int) -> int:
        """Return the next start of the round robin."""
        return next(self._counter) % runner_count

    def __repr__(self) -> str:
        return f"NaivePlacer({self._config!r})"
