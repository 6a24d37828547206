"""Least-loaded with affinity: the power of two choices among a function's preferred runners."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._load import LoadTable, tracked
from ._rendezvous import RendezvousBase, full_order
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall
    from .._status import RunnerStatus

__all__ = ["LeastLoadedPlacer"]


class LeastLoadedPlacer(RendezvousBase):
    """Tries the less loaded of a function's two preferred runners first.

    A function's two preferred runners are the first two of its rendezvous order (see
    :class:`RendezvousPlacer`); each pass starts with the one with the lower load (the home
    on a tie), then the other, then the rest of the rendezvous order. Calls stay on two warm
    runners per function while load spreads.

    A runner's load is this placer's calls in flight on it, or, while the runner's status
    is fresh (given to :meth:`observe_status` or fetched by :meth:`refresh_status` less
    than ``status_max_age`` ago), the larger of that and the status's
    ``active_request_count``: the status counts other load balancers' calls too, and this
    placer's own count is newer than any status.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The clock, back-off randomness and metric views; the monotonic clock,
            a shared generator and the registered views when omitted.
        status_max_age: Seconds a runner's status stays fresh.

    Raises:
        ValueError: If ``status_max_age`` is negative.
    """

    __slots__ = ("_statuses", "load", "status_max_age")

    def __init__(
        self,
        config: PlacerConfig | None = None,
        *,
        status_max_age: float = 1.0,
        runtime: PlacerRuntime = DEFAULT_RUNTIME,
    ) -> None:
        super().__init__(config, runtime=runtime)
        if not status_max_age >= 0:
            raise ValueError(f"status_max_age must be >= 0, got {status_max_age!r}")
        self.status_max_age = status_max_age
        self.load = LoadTable()
        # address -> (active_request_count, when it was observed)
        self._statuses: dict[str, tuple[int, float]] = {}

    def observe_status(self, address: str, status: RunnerStatus) -> None:
        """Record a runner's status, fresh for ``status_max_age`` seconds from now.

        A status whose check failed (``status_failed``) is ignored.
        """
        if not status.status_failed:
            self._statuses[address] = (status.active_request_count, self._runtime.clock())

    async def refresh_status(self, runners: Sequence[Runner]) -> None:
        """Ask every runner for its status, concurrently, and record the answers.

        A runner whose status call fails keeps no fresh status: it is ranked by this
        placer's own count. Call it periodically (say every ``status_max_age / 2`` seconds)
        where runner status is worth its cost.
        """
        answers = await asyncio.gather(
            *(runner.status() for runner in runners), return_exceptions=True
        )
        for runner, answer in zip(runners, answers, strict=True):
            if not isinstance(answer, BaseException):
                self.observe_status(runner.address, answer)

    def runner_load(self, address: str) -> int:
        """Return the load the placer ranks the runner by (see the class docstring)."""
        own = self.load.counts.get(address, 0)
        seen = self._statuses.get(address)
        if seen is None:
            return own
        if self._runtime.clock() - seen[1] > self.status_max_age:
            del self._statuses[address]
            return own
        return max(own, seen[0])

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterator[int]:
        """Return the less loaded of the two preferred runners, the other, then the rest."""
        fn_id = call.model.fn_id
        membership = self.membership(runners)
        first = self.preferred(fn_id, membership)
        addresses = membership.addresses
        if len(first) > 1:
            if self._statuses:
                load = self.runner_load
                swap = load(addresses[first[1]]) < load(addresses[first[0]])
            else:  # the common case, without status: two dict lookups
                counts = self.load.counts
                swap = counts.get(addresses[first[1]], 0) < counts.get(addresses[first[0]], 0)
            if swap:
                first = (first[1], first[0], *first[2:])
        return tracked(full_order(fn_id, membership, first), addresses, self.load)

    def __repr__(self) -> str:
        return f"LeastLoadedPlacer({self._config!r}, status_max_age={self.status_max_age!r})"
