"""Bounded load that sends a call where its function has an idle instance (issue 17).

:class:`BoundedLoadPlacer` sends a call to its function's home unless the home holds ``ceil(c
* average)`` of the placer's calls, then to the next runner of the function's rendezvous
order below the bound. A call of a function whose instances on its home are all busy starts
cold there, while an idle instance of the function may sit on a runner an earlier overflow
went to. On some workloads bounded load lost up to 4.6 warm-rate points to plain consistent
hashing this way (docs/benchmarks.md).

A load balancer can tell where its functions' idle instances are: a call's order is dropped
when the call ends, on the runner that took it (see :mod:`._load`), and that runner then keeps
an idle instance of the function until its idle timeout; the next call of the function sent
there uses it. So this placer keeps, per function and runner, the end times of its calls
there not yet followed by another call (its idle instances, as this load balancer sees them),
and tries first the runners below the load bound that have one, the most recent first (an
older one is likelier to have been evicted). Then it follows bounded load: the rendezvous
order below the bound, then the runners at the bound. A fresh placer, or a function with no
idle instance, goes home first, so homes and their movement are rendezvous hashing's.

With several load balancers each sees only its own calls' instances; docs/benchmarks.md has
what that costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._load import LoadTable
from ._rendezvous import Membership, RendezvousBase, full_order
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall

__all__ = ["WARM_FACTOR", "WarmBoundedPlacer"]

#: ``c`` by default: measured best of 1.1, 1.15, 1.2 and 1.25 (docs/benchmarks.md). Lower
#: than bounded load's 1.25 because calls follow idle instances as well as homes, which
#: weighs on balance.
WARM_FACTOR = 1.15
#: Functions whose idle instances are remembered at most; the memory is emptied past this.
RECENT_SIZE = 16384


class WarmBoundedPlacer(RendezvousBase):
    """Bounded-load rendezvous hashing that prefers runners with an idle instance of the function.

    The load bound is :class:`BoundedLoadPlacer`'s: a runner holding ``ceil(c * (in_flight +
    1) / n)`` of this placer's calls is tried only after the runners below it. Below the
    bound, the runners on which one of the function's calls ended within ``warm_window``
    seconds, with no call of the function sent there since, come first, the most recent end
    first; then the function's rendezvous order (home first); then the runners at the bound.
    A pass tries every runner once.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        factor: ``c``, the bound over the average load; at least 1 (:data:`WARM_FACTOR`
            when omitted).
        warm_window: Seconds an idle instance is counted on after its call ended: Fn's
            default idle timeout of a hot function (30 s).
        runtime: The clock (which also times idle instances), back-off randomness and
            metric views; the monotonic clock, a shared generator and the registered views
            when omitted.

    Raises:
        ValueError: If ``factor`` is below 1 or ``warm_window`` is negative.
    """

    __slots__ = ("_index", "_recent", "factor", "load", "warm_window")

    def __init__(
        self,
        config: PlacerConfig | None = None,
        *,
        factor: float = WARM_FACTOR,
        warm_window: float = 30.0,
        runtime: PlacerRuntime = DEFAULT_RUNTIME,
    ) -> None:
        super().__init__(config, runtime=runtime)
        if not factor >= 1.0:
            raise ValueError(f"bounded-load factor must be at least 1, got {factor!r}")
        if not warm_window >= 0.0:
            raise ValueError(f"warm window must be at least 0, got {warm_window!r}")
        self.factor = factor
        self.warm_window = warm_window
        self.load = LoadTable()
        # fn_id -> {address: end times of its calls there not followed by another call}: the
        # function's idle instances as this placer sees them, each list oldest first.
        self._recent: dict[str, dict[str, list[float]]] = {}
        self._index: tuple[Membership | None, dict[str, int]] = (None, {})

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterator[int]:
        """Return runners with an idle instance of the function, then bounded-load order."""
        fn_id = call.model.fn_id
        membership = self.membership(runners)
        return self._order(fn_id, membership, self.preferred(fn_id, membership))

    def idle_runners(self, fn_id: str, membership: Membership) -> list[int]:
        """Return the runners where the function has an idle instance, latest end first."""
        recent = self._recent.get(fn_id)
        if not recent:
            return []
        oldest = self._runtime.clock() - self.warm_window
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
        known, index = self._index
        if known is not membership:
            index = {address: number for number, address in enumerate(membership.addresses)}
            self._index = (membership, index)
        return [index[address] for _, address in found if address in index]

    def _take(self, fn_id: str, address: str) -> float | None:
        ends = self._recent.get(fn_id, {}).get(address)
        return ends.pop() if ends else None

    def _give_back(self, fn_id: str, address: str, ended: float) -> None:
        ends = self._recent.setdefault(fn_id, {}).setdefault(address, [])
        ends.append(ended)
        ends.sort()

    def _ended(self, fn_id: str, address: str) -> None:
        if fn_id not in self._recent and len(self._recent) >= RECENT_SIZE:
            self._recent.clear()
        self._recent.setdefault(fn_id, {}).setdefault(address, []).append(self._runtime.clock())

    def _candidates(
        self, fn_id: str, membership: Membership, first: tuple[int, ...]
    ) -> Iterator[int]:
        addresses = membership.addresses
        load = self.load
        counts = load.counts
        count = len(addresses)
        factor = self.factor

        def below(index: int) -> bool:
            # Taken afresh for each runner: it sees the attempts other calls started meanwhile.
            return counts.get(addresses[index], 0) < math.ceil(factor * (load.total + 1) / count)

        tried: set[int] = set()
        for index in self.idle_runners(fn_id, membership):
            if below(index):
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
        yield from deferred

    def _order(self, fn_id: str, membership: Membership, first: tuple[int, ...]) -> Iterator[int]:
        """Yield the candidates, counting each runner in ``load`` while its index is out.

        A runner's idle instance is taken when its index goes out and given back if the runner
        refused (the loop asked for the next index). When the loop drops the order instead,
        the call ended on that runner: its instance is idle there from now. (A pass cut short
        by the call's deadline also drops the order, after taking a runner's index it did not
        try: that runner is then wrongly counted as warm for one call, or 30 s.)
        """
        addresses = membership.addresses
        load = self.load
        counts = load.counts
        for index in self._candidates(fn_id, membership, first):
            address = addresses[index]
            counts[address] = counts.get(address, 0) + 1
            load.total += 1
            taken = self._take(fn_id, address)
            try:
                yield index
            except GeneratorExit:
                self._ended(fn_id, address)
                raise
            else:
                if taken is not None:
                    self._give_back(fn_id, address, taken)
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
