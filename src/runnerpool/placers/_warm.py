"""Bounded load whose overflow goes where the function was recently warm (issue 17).

:class:`BoundedLoadPlacer` sends a call past its home when the home holds ``ceil(c *
average)`` of the placer's calls, to the next runner of the function's rendezvous order
that is below the bound. That runner is often one where the function has no hot instance:
the call starts cold there, and its instance then holds memory that evicts other functions'
idle instances. On some workloads this cost bounded load up to 4.6 warm-rate points against
plain consistent hashing (docs/benchmarks.md).

The load balancer knows where each function's calls recently ended: a call's order is
dropped when the call ends, on the runner that took it, and that runner then holds an idle
instance of the function until the runner's idle timeout. So the overflow here tries, first,
the runners below the bound on which one of the function's calls ended within
``warm_window`` seconds (most recent first), then the rest of the function's rendezvous
order below the bound, then the runners at the bound. The home still comes first whenever it
is below the bound, so homes and their movement are rendezvous hashing's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._load import LoadTable
from ._rendezvous import Membership, RendezvousBase, full_order

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall

__all__ = ["WarmBoundedPlacer"]

#: Functions whose recent runners are remembered at most; the memory is emptied past this.
RECENT_SIZE = 16384


def _now() -> float:
    # The event loop's clock: time.monotonic() in a real load balancer, the virtual clock in
    # the simulator. Outside a loop (a bare order in a test) there is no time: 0.
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return 0.0


class WarmBoundedPlacer(RendezvousBase):
    """Bounded-load rendezvous hashing whose overflow prefers runners the function ran on.

    A function's order is its rendezvous order, with a load bound as in
    :class:`BoundedLoadPlacer`: a runner holding ``ceil(c * (in_flight + 1) / n)`` of this
    placer's calls is tried only after the runners below it. When the home is below the bound
    it is tried first. Otherwise the runners below the bound where one of the function's calls
    ended within ``warm_window`` seconds come next, the most recent first (they likely hold an
    idle instance of it), then the rest of the rendezvous order below the bound, then the
    runners at the bound in rendezvous order. A pass still tries every runner once.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        factor: ``c``, the bound over the average load; at least 1. By default the
            configuration's ``bounded_load_factor`` (1.25 unless set).
        warm_window: Seconds after a call's end during which its runner counts as warm for
            its function; Fn's default idle timeout of a hot function (30 s).

    Raises:
        ValueError: If ``factor`` is below 1 or ``warm_window`` is negative.
    """

    __slots__ = ("_recent", "factor", "load", "warm_first", "warm_window")

    def __init__(
        self,
        config: PlacerConfig | None = None,
        *,
        factor: float | None = None,
        warm_window: float = 30.0,
    ) -> None:
        super().__init__(config)
        if factor is None:
            factor = self._config.bounded_load_factor
        if not factor >= 1.0:
            raise ValueError(f"bounded-load factor must be at least 1, got {factor!r}")
        if not warm_window >= 0.0:
            raise ValueError(f"warm window must be at least 0, got {warm_window!r}")
        self.factor = factor
        self.warm_window = warm_window
        self.load = LoadTable()
        # fn_id -> {address: end times of its calls there not yet reused}: the function's
        # idle instances as this placer can tell them, oldest end first in each list.
        self._recent: dict[str, dict[str, list[float]]] = {}
        self.warm_first = False

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterator[int]:
        """Return the home if below the bound, then recently warm runners, then the rest."""
        fn_id = call.model.fn_id
        membership: Membership = self.membership(runners)
        return self._order(fn_id, membership, self.preferred(fn_id, membership))

    def _warm(self, fn_id: str, addresses: tuple[str, ...]) -> list[int]:
        """Return the runners with an idle instance of the function, by latest end first."""
        recent = self._recent.get(fn_id)
        if not recent:
            return []
        oldest = _now() - self.warm_window
        found: list[tuple[float, str]] = []
        for address, ends in list(recent.items()):
            while ends and ends[0] < oldest:
                del ends[0]
            if ends:
                found.append((ends[-1], address))
            else:
                del recent[address]
        if not recent:
            del self._recent[fn_id]
            return []
        found.sort(reverse=True)
        index = {address: number for number, address in enumerate(addresses)}
        return [index[a] for _, a in found if a in index]

    def _take(self, fn_id: str, address: str) -> float | None:
        ends = self._recent.get(fn_id, {}).get(address)
        return ends.pop() if ends else None

    def _give_back(self, fn_id: str, address: str, ended: float | None) -> None:
        if ended is None:
            return
        ends = self._recent.setdefault(fn_id, {}).setdefault(address, [])
        ends.append(ended)
        ends.sort()

    def _ended(self, fn_id: str, address: str) -> None:
        if fn_id not in self._recent and len(self._recent) >= RECENT_SIZE:
            self._recent.clear()
        self._recent.setdefault(fn_id, {}).setdefault(address, []).append(_now())

    def _order(
        self, fn_id: str, membership: Membership, first: tuple[int, ...]
    ) -> Iterator[int]:
        addresses = membership.addresses
        load = self.load
        counts = load.counts
        count = len(addresses)
        factor = self.factor

        def below(index: int) -> bool:
            bound = math.ceil(factor * (load.total + 1) / count)
            return counts.get(addresses[index], 0) < bound

        def candidates() -> Iterator[int]:
            # Home below the bound first; then warm runners below it; then the rest below
            # it; then those at the bound. Each runner once.
            tried: set[int] = set()
            home = first[0]
            if not self.warm_first and below(home):
                tried.add(home)
                yield home
            for index in self._warm(fn_id, addresses):
                if index not in tried and below(index):
                    tried.add(index)
                    yield index
            deferred: list[int] = []
            for index in full_order(fn_id, membership, first):
                if index in tried:
                    continue
                if below(index):
                    tried.add(index)
                    yield index
                else:
                    deferred.append(index)
            for index in deferred:
                if index not in tried:
                    tried.add(index)
                    yield index

        for index in candidates():
            address = addresses[index]
            counts[address] = counts.get(address, 0) + 1
            load.total += 1
            taken = self._take(fn_id, address)
            try:
                yield index
            except GeneratorExit:
                # The order is dropped when the call ends: on this runner, which now holds
                # an idle instance of the function (or refused it as the call gave up).
                self._ended(fn_id, address)
                raise
            else:
                self._give_back(fn_id, address, taken)  # refused: the instance is still idle
            finally:
                load.total -= 1
                left = counts[address] - 1
                if left:
                    counts[address] = left
                else:
                    del counts[address]

    def __repr__(self) -> str:
        return (
            f"WarmBoundedPlacer({self._config!r}, factor={self.factor!r}, "
            f"warm_window={self.warm_window!r})"
        )
