"""Least-loaded with affinity: the power of two choices among a function's preferred runners."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._load import LoadTable, tracked
from ._rendezvous import RendezvousBase, full_order

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall

__all__ = ["LeastLoadedPlacer"]


class LeastLoadedPlacer(RendezvousBase):
    """Tries the less loaded of a function's two preferred runners first.

    A function's two preferred runners are the first two of its rendezvous order (see
    :class:`RendezvousPlacer`); each pass starts with the one that has fewer of this
    placer's calls in flight (the home on a tie), then the other, then the rest of the
    rendezvous order. Calls stay on two warm runners per function while load spreads.
    Runner status is not consulted: only this load balancer's own in-flight counts.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
    """

    __slots__ = ("load",)

    def __init__(self, config: PlacerConfig | None = None) -> None:
        super().__init__(config)
        self.load = LoadTable()

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterator[int]:
        """Return the less loaded of the two preferred runners, the other, then the rest."""
        fn_id = call.model.fn_id
        membership = self.membership(runners)
        first = self.preferred(fn_id, membership)
        addresses = membership.addresses
        if len(first) > 1:
            counts = self.load.counts
            if counts.get(addresses[first[1]], 0) < counts.get(addresses[first[0]], 0):
                first = (first[1], first[0], *first[2:])
        return tracked(full_order(fn_id, membership, first), addresses, self.load)

    def __repr__(self) -> str:
        return f"LeastLoadedPlacer({self._config!r})"
