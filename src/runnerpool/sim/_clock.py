"""An asyncio event loop on a virtual clock: sleeping takes no real time.

Placers run on it are given its clock (:func:`virtual_runtime`): asyncio's timers and the
placers' deadlines then read the same virtual time, and no real clock is read.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..placers import PlacerRuntime

__all__ = ["VirtualEventLoop", "run_virtual", "virtual_runtime"]

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


def virtual_runtime(loop: asyncio.AbstractEventLoop, seed: int = 0) -> PlacerRuntime:
    """Return a placer runtime on ``loop``'s virtual clock, backing off with a seeded generator.

    Give it to the placers a simulation runs (``create_placer(name, config, runtime=...)``):
    they then read no other clock. The metric views are the registered ones, as for any
    placer.

    Args:
        loop: The loop the placers will run on: a :class:`VirtualEventLoop`, usually.
        seed: The seed of the back-off's jitter.
    """
    return PlacerRuntime(clock=loop.time, rng=random.Random(seed))


def run_virtual(
    coro: Coroutine[Any, Any, T], loop: VirtualEventLoop | None = None
) -> tuple[T, float]:
    """Run ``coro`` on ``loop`` (a new :class:`VirtualEventLoop` by default); close the loop.

    Returns:
        The coroutine's result and the virtual time at its end.
    """
    loop = VirtualEventLoop() if loop is None else loop
    try:
        result = loop.run_until_complete(coro)
        return result, loop.time()
    finally:
        loop.close()
