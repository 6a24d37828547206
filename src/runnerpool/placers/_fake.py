"""A placer that only waits: the port of Go's ``fake_placer.go``, for tests of callers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .._interfaces import Placer
from ._tracker import PlacerTracker

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import RunnerCall, RunnerPool

__all__ = ["FakeDetachedPlacer"]


class FakeDetachedPlacer(Placer):
    """Sleeps instead of placing, then succeeds unless the placer's timeout passed.

    It never asks the pool for runners, so tests of detached-call handling can use it with
    no runners at all. Metrics are recorded as for a real placement with no attempts.

    Args:
        config: Timeouts; ``detached_placer_timeout`` applies to detached calls.
        sleep: Seconds to wait before answering.
    """

    __slots__ = ("_config", "_sleep")

    def __init__(self, config: PlacerConfig, sleep: float) -> None:
        self._config = config
        self._sleep = sleep

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
        tracker = PlacerTracker(self._config, call)
        try:
            await asyncio.sleep(self._sleep)
            if tracker.placer_expired() and not tracker.request_expired():
                raise TimeoutError("placer timeout passed")
        except asyncio.CancelledError:
            tracker.mark_cancelled()
            raise
        finally:
            tracker.done()
