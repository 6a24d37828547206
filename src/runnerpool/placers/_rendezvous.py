"""Rendezvous (highest random weight) hashing: an affinity that is stable under membership change.

Each runner scores each function with a 64-bit keyed hash, ``siphash(key(address), fn_id)``;
a function's order is its runners by score, highest first. The score of a (function, runner)
pair does not depend on the other runners, so removing a runner moves only the functions whose
home it was, and adding one moves only the functions whose home it becomes: about ``1 / n``
of them, wherever the runner sits in the list.

Scoring every runner costs ``n`` SipHash calls (about 8 µs for 100 runners), so each function's
first few runners are cached per membership: in steady state a call costs a dict lookup.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING

from ._base import BasePlacer
from ._hashing import siphash
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import Runner, RunnerCall

__all__ = ["RendezvousPlacer"]

#: How many of a function's first runners are kept in its cache entry; the rest of its order
#: is computed only when a pass gets past them.
TOP = 4
#: Functions cached at most; the cache is emptied when it grows past this.
CACHE_SIZE = 16384


def runner_key(address: str) -> bytes:
    """Return the 16-byte SipHash key a runner scores functions with, derived from its address."""
    return hashlib.blake2b(address.encode(), digest_size=16, person=b"runnerpool-hrw").digest()


class Membership:
    """One list of runner addresses and the per-runner keys that score functions on it.

    Args:
        addresses: The runners' addresses, in the pool's order.
        keys: A cache of :func:`runner_key` by address, shared between memberships.
    """

    __slots__ = ("addresses", "keys")

    def __init__(self, addresses: tuple[str, ...], keys: dict[str, bytes]) -> None:
        self.addresses = addresses
        found: list[bytes] = []
        for address in addresses:
            key = keys.get(address)
            if key is None:
                key = keys[address] = runner_key(address)
            found.append(key)
        self.keys = found

    def scores(self, fn_id: str) -> list[int]:
        """Return each runner's 64-bit score for the function, in list order."""
        data = fn_id.encode()
        return list(map(siphash, self.keys, repeat(data, len(self.keys))))

    def top(self, fn_id: str, k: int = TOP) -> tuple[int, ...]:
        """Return the indices of the function's ``k`` highest-scoring runners, best first."""
        scores = self.scores(fn_id)
        return tuple(heapq.nlargest(k, range(len(scores)), key=scores.__getitem__))

    def order(self, fn_id: str) -> list[int]:
        """Return the indices of all runners, best first: the function's full order."""
        scores = self.scores(fn_id)
        return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)


class RendezvousBase(BasePlacer):
    """The shared part of the rendezvous placers: memberships and per-function caches.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The clock, back-off randomness and metric views; the monotonic clock,
            a shared generator and the registered views when omitted.
    """

    __slots__ = ("_cache", "_keys", "_last_membership", "_last_runners")

    def __init__(
        self, config: PlacerConfig | None = None, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
    ) -> None:
        super().__init__(config, runtime=runtime)
        self._keys: dict[str, bytes] = {}
        self._last_runners: tuple[Runner, ...] | None = None
        self._last_membership: Membership | None = None
        self._cache: dict[str, tuple[Membership, tuple[int, ...]]] = {}

    def membership(self, runners: Sequence[Runner]) -> Membership:
        """Return the membership of a runner list, reusing the last one while it is the same.

        A tuple is immutable, so the same tuple object (what :class:`StaticRunnerPool` gives)
        is recognised at once; any other sequence is compared by its addresses.
        """
        if runners is self._last_runners and self._last_membership is not None:
            return self._last_membership
        addresses = tuple(runner.address for runner in runners)
        membership = self._last_membership
        if membership is None or membership.addresses != addresses:
            membership = Membership(addresses, self._keys)
            self._last_membership = membership
        self._last_runners = runners if type(runners) is tuple else None
        return membership

    def preferred(self, fn_id: str, membership: Membership) -> tuple[int, ...]:
        """Return the indices of the function's first runners (up to ``TOP``), best first."""
        entry = self._cache.get(fn_id)
        if entry is not None and entry[0] is membership:
            return entry[1]
        cache = self._cache
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        top = membership.top(fn_id)
        cache[fn_id] = (membership, top)
        return top

    def home(self, fn_id: str, runners: Sequence[Runner]) -> int:
        """Return the index of the function's home among ``runners`` (which must not be empty)."""
        return self.preferred(fn_id, self.membership(runners))[0]


def full_order(fn_id: str, membership: Membership, first: tuple[int, ...]) -> Iterator[int]:
    """Yield ``first``, then the function's other runners in rendezvous order.

    The full order is computed only if the pass gets past ``first``.
    """
    yield from first
    if len(first) < len(membership.addresses):
        seen = set(first)
        for index in membership.order(fn_id):
            if index not in seen:
                yield index


class RendezvousPlacer(RendezvousBase):
    """Sends each function to its highest-scoring runner first (rendezvous hashing).

    Every pass tries the function's runners in descending order of
    ``siphash(key(address), fn_id)``. Unlike :class:`CHPlacer`, whose jump hash is stable only
    when runners are added or removed at the end of the list, removing or adding a runner
    anywhere moves only the functions whose home it was or becomes, and a function's
    fallbacks differ from function to function, so one runner's overflow spreads over all
    the others.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The clock, back-off randomness and metric views; the monotonic clock,
            a shared generator and the registered views when omitted.
    """

    __slots__ = ()

    def runner_order(self, call: RunnerCall, runners: Sequence[Runner]) -> Iterator[int]:
        """Return the function's runners in rendezvous order, best first."""
        fn_id = call.model.fn_id
        membership = self.membership(runners)
        return full_order(fn_id, membership, self.preferred(fn_id, membership))

    def __repr__(self) -> str:
        return f"RendezvousPlacer({self._config!r})"
