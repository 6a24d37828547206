"""The lookup cache of the API-server source: Fn's ``NewCachedDataAccess``, and two additions.

As Fn's LB node caches: a success is kept for a fixed time to live from its fetch (5 s; reads
do not extend it), per key, and concurrent misses of one key share one fetch (single-flight).
Beyond Fn, both documented in ``docs/decisions.md``:

- *stale serving*: when a refresh fails with :class:`SourceUnavailableError` (the API server
  unreachable, retries included), an entry whose time to live ended less than ``max_stale``
  seconds ago is served, with a warning logged, and is checked again one time to live later;
  Fn fails every such call;
- *negative caching*: a :class:`NotFoundError` is kept ``negative_ttl`` seconds (1 s), so that a
  flood of unknown ids asks the API server once a second per id, not once per request; Fn
  caches no failure.

Entries past every window are purged at most once a time to live, on a store, so the cache
holds only what was looked up recently.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._sources import NotFoundError, SourceUnavailableError

__all__ = ["LookupCache"]

logger = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V | None
    missing: NotFoundError | None
    fetched_at: float
    expires: float


class LookupCache(Generic[V]):
    """Per-key cache of lookups, with single-flight fetches, stale serving and negative entries.

    Args:
        ttl: Seconds a success is served from its fetch (Fn's 5 s); 0 caches nothing, though
            concurrent misses still share one fetch.
        max_stale: Seconds after its time to live that a success is still served while
            refreshing it fails with :class:`SourceUnavailableError` (0: never, as Fn).
        negative_ttl: Seconds a :class:`NotFoundError` is served from its fetch (0: never, as
            Fn).
        clock: Seconds of a monotonic clock.

    Raises:
        ValueError: If a duration is negative.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_stale: float,
        negative_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("ttl", ttl), ("max_stale", max_stale), ("negative_ttl", negative_ttl)):
            if not value >= 0:
                raise ValueError(f"{name} must be at least 0, got {value!r}")
        self._ttl = ttl
        self._max_stale = max_stale
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._fetching: dict[Hashable, asyncio.Task[V]] = {}
        self._purged_at = clock()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        """Return the value of ``key``: cached, or from ``fetch`` (one fetch per key at a time).

        Raises:
            NotFoundError: What ``fetch`` raised, now or cached.
            SourceUnavailableError: If ``fetch`` raised it and no entry may be served stale.
            Exception: Anything else ``fetch`` raised (never cached).
        """
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.expires:
            if entry.missing is not None:
                # A copy: raising one instance from many calls would chain their tracebacks.
                raise copy.copy(entry.missing)
            return entry.value  # type: ignore[return-value]
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.ensure_future(self._refresh(key, fetch))
            self._fetching[key] = task
            task.add_done_callback(lambda done: self._fetched(key, done))
        # Shielded: a waiter that goes away does not cancel the others' fetch.
        return await asyncio.shield(task)

    def _fetched(self, key: Hashable, task: asyncio.Task[V]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    async def _refresh(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await fetch()
        except NotFoundError as exc:
            now = self._clock()
            if self._negative_ttl > 0:
                self._store(key, _Entry(None, exc, now, now + self._negative_ttl))
            else:
                self._entries.pop(key, None)
            raise
        except SourceUnavailableError:
            stale = self._entries.get(key)
            now = self._clock()
            if stale is None or stale.missing is not None:
                raise
            last = stale.fetched_at + self._ttl + self._max_stale
            if now >= last:
                raise
            logger.warning(
                "Serving %r as fetched %.1f s ago: the Fn API server is unavailable",
                key,
                now - stale.fetched_at,
            )
            # Checked again one time to live later, not on every call meanwhile.
            stale.expires = min(now + self._ttl, last)
            return stale.value  # type: ignore[return-value]
        now = self._clock()
        self._store(key, _Entry(value, None, now, now + self._ttl))
        return value

    def _store(self, key: Hashable, entry: _Entry[V]) -> None:
        self._entries[key] = entry
        now = entry.fetched_at
        if now - self._purged_at < max(self._ttl, self._negative_ttl):
            return
        self._purged_at = now
        for old_key, old in list(self._entries.items()):
            keep_until = old.expires
            if old.missing is None:
                keep_until = max(keep_until, old.fetched_at + self._ttl + self._max_stale)
            if now >= keep_until:
                del self._entries[old_key]
