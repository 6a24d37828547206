"""Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2018)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING

from ._load import LoadTable
from ._rendezvous import Membership, RendezvousBase, full_order
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall

__all__ = ["BoundedLoadPlacer"]


#: Marks the end of the first round of a pass in :func:`_bounded`.
_END = (-1,)


def _bounded(
    order: Iterator[int], addresses: tuple[str, ...], load: LoadTable, factor: float
) -> Iterator[int]:
    """Yield the runners of ``order`` below the load bound, then the others, counting each.

    The bound is ``ceil(factor * (in_flight + 1) / n)``, taken afresh before each runner, so
    it sees the attempts other calls started meanwhile. Each runner is counted in ``load``
    while its index is out, as :func:`tracked` does (one generator instead of two: a
    generator layer costs about 0.2 µs a runner).
    """
    counts = load.counts
    count = len(addresses)
    deferred: list[int] = []
    bounding = True
    for index in chain(order, _END, deferred):  # ``deferred`` is read once ``order`` is spent
        if index < 0:
            bounding = False
            continue
        address = addresses[index]
        if bounding and counts.get(address, 0) >= math.ceil(factor * (load.total + 1) / count):
            deferred.append(index)
            continue
        counts[address] = counts.get(address, 0) + 1
        load.total += 1
        try:
            yield index
        finally:
            load.total -= 1
            left = counts[address] - 1
            if left:
                counts[address] = left
            else:
                del counts[address]


class BoundedLoadPlacer(RendezvousBase):
    """Consistent hashing with bounded loads: affinity, but no runner above ``c`` times the average.

    A function's order is its rendezvous order (see :class:`RendezvousPlacer`). A runner
    that already has ``ceil(c * (in_flight + 1) / n)`` calls from this placer, where
    ``in_flight`` is the placer's calls in flight on all runners, is passed over and tried
    only after the runners below the bound, at the end of the pass: a pass still tries every
    runner once. Overflow follows the function's own rendezvous order, which differs from
    function to function, so it does not pile onto one neighbour. While runners accept, no
    runner holds more than ``ceil(c * average)`` of this placer's calls.

    Args:
        config: Timeouts and back-off, and ``c``: the configuration's ``bounded_load_factor``
            (validated there: at least 1). Fn's defaults when omitted.
        runtime: The clock, back-off randomness and metric views; the monotonic clock,
            a shared generator and the registered views when omitted.
    """

    __slots__ = ("factor", "load")

    def __init__(
        self, config: PlacerConfig | None = None, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
    ) -> None:
        super().__init__(config, runtime=runtime)
        # One way to set c: the configuration (the CLI's --bounded-load-factor writes it there).
        self.factor = self._config.bounded_load_factor
        self.load = LoadTable()

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterator[int]:
        """Return the function's rendezvous order, runners at the load bound last."""
        fn_id = call.model.fn_id
        membership: Membership = self.membership(runners)
        order = full_order(fn_id, membership, self.preferred(fn_id, membership))
        addresses = membership.addresses
        return _bounded(order, addresses, self.load, self.factor)

    def __repr__(self) -> str:
        return f"BoundedLoadPlacer({self._config!r})"
