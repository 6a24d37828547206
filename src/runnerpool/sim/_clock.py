"""An asyncio event loop on a virtual clock: sleeping takes no real time."""

from __future__ import annotations

import asyncio
import contextlib
import random
import selectors
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from unittest import mock

__all__ = ["VirtualEventLoop", "run_virtual", "virtual_time"]

T = TypeVar("T")


class _VirtualSelector(selectors.SelectSelector):
    """A selector that never waits: a wait with a timeout advances the virtual clock."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # Nothing ready and no timer: nothing can ever happen again.
            raise RuntimeError("virtual event loop deadlocked: nothing scheduled")
        if timeout > 0:
            self.now += timeout
        return []


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual, starting at 0.

    Whenever every task waits for a timer, the clock jumps to the next timer. I/O never
    happens; a loop with no ready callback and no timer raises :class:`RuntimeError`.
    """

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        """Return the virtual time in seconds."""
        return self._virtual.now


@contextlib.contextmanager
def virtual_time(loop: VirtualEventLoop, seed: int = 0) -> Iterator[None]:
    """Make the placers read ``loop``'s clock and back off with a seeded generator."""
    from ..placers._tracker import PlacerTracker

    with (
        mock.patch("runnerpool.placers._tracker.monotonic", loop.time),
        mock.patch("runnerpool.placers._least_loaded.monotonic", loop.time),
        mock.patch.object(PlacerTracker, "backoff_rng", random.Random(seed)),
    ):
        yield


def run_virtual(coro: Coroutine[Any, Any, T], seed: int = 0) -> tuple[T, float]:
    """Run ``coro`` on a new :class:`VirtualEventLoop`; return its result and the end time."""
    loop = VirtualEventLoop()
    try:
        with virtual_time(loop, seed):
            result = loop.run_until_complete(coro)
        return result, loop.time()
    finally:
        loop.close()
