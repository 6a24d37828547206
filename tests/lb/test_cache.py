"""The lookup cache: Fn's time to live and single-flight, stale serving, negative entries."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runnerpool._errors import APIError
from runnerpool.lb._cache import LookupCache
from runnerpool.lb._sources import FnNotFoundError, SourceUnavailableError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Counts fetches and answers, in turn, the outcomes it was given (the last repeats)."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> object:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes[min(self.calls, len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def cache(clock: Clock, ttl: float = 5, max_stale: float = 60, negative_ttl: float = 1):
    """A cache on the test's clock."""
    return LookupCache[object](ttl=ttl, max_stale=max_stale, negative_ttl=negative_ttl, clock=clock)


class TestTimeToLive:
    async def test_served_until_ttl_from_fetch(self) -> None:
        """A success is served for the time to live from its fetch; reads do not extend it."""
        clock = Clock()
        lookups = cache(clock)
        fetch = Fetcher("v1", "v2")
        assert await lookups.get("k", fetch) == "v1"
        clock.now += 4.9
        assert await lookups.get("k", fetch) == "v1"
        assert fetch.calls == 1
        clock.now += 0.1
        assert await lookups.get("k", fetch) == "v2"
        assert fetch.calls == 2

    async def test_keys_are_separate(self) -> None:
        """Each key has its own entry."""
        clock = Clock()
        lookups = cache(clock)
        assert await lookups.get("a", Fetcher(1)) == 1
        assert await lookups.get("b", Fetcher(2)) == 2
        assert await lookups.get("a", Fetcher(3)) == 1

    async def test_zero_ttl_caches_nothing(self) -> None:
        """With a time to live of 0 every lookup fetches."""
        clock = Clock()
        lookups = cache(clock, ttl=0)
        fetch = Fetcher("v")
        for _ in range(3):
            await lookups.get("k", fetch)
        assert fetch.calls == 3

    async def test_other_errors_not_cached(self) -> None:
        """An error other than not-found or unavailable is raised and never cached."""
        clock = Clock()
        lookups = cache(clock)
        fetch = Fetcher(APIError(), "v")
        with pytest.raises(APIError):
            await lookups.get("k", fetch)
        assert await lookups.get("k", fetch) == "v"

    @pytest.mark.parametrize("name", ["ttl", "max_stale", "negative_ttl"])
    def test_negative_durations_refused(self, name: str) -> None:
        """A negative duration is a ValueError naming it."""
        durations = {"ttl": 1.0, "max_stale": 1.0, "negative_ttl": 1.0, name: -1.0}
        with pytest.raises(ValueError, match=name):
            LookupCache[object](
                ttl=durations["ttl"],
                max_stale=durations["max_stale"],
                negative_ttl=durations["negative_ttl"],
            )


class TestSingleFlight:
    async def test_concurrent_misses_share_one_fetch(self) -> None:
        """Concurrent misses of one key wait for one fetch and all get its value."""
        lookups = cache(Clock())
        fetch = Fetcher("v")
        fetch.gate = asyncio.Event()
        waiters = [asyncio.create_task(lookups.get("k", fetch)) for _ in range(20)]
        await asyncio.sleep(0)
        fetch.gate.set()
        assert await asyncio.gather(*waiters) == ["v"] * 20
        assert fetch.calls == 1

    async def test_shared_failure_reaches_every_waiter(self) -> None:
        """A shared fetch's error is raised in every waiter, then the next lookup fetches again."""
        lookups = cache(Clock(), negative_ttl=0)
        fetch = Fetcher(FnNotFoundError(), "v")
        fetch.gate = asyncio.Event()
        waiters = [asyncio.create_task(lookups.get("k", fetch)) for _ in range(5)]
        await asyncio.sleep(0)
        fetch.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(result, FnNotFoundError) for result in results)
        assert fetch.calls == 1
        assert await lookups.get("k", fetch) == "v"

    async def test_cancelled_waiter_leaves_the_fetch_to_others(self) -> None:
        """A waiter that goes away does not cancel the fetch another waiter shares."""
        lookups = cache(Clock())
        fetch = Fetcher("v")
        fetch.gate = asyncio.Event()
        first = asyncio.create_task(lookups.get("k", fetch))
        second = asyncio.create_task(lookups.get("k", fetch))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        fetch.gate.set()
        assert await second == "v"
        assert first.cancelled()
        assert fetch.calls == 1


class TestStale:
    async def test_served_stale_while_unavailable_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An expired entry is served while the source is unavailable, once warned per refresh."""
        clock = Clock()
        lookups = cache(clock, ttl=5, max_stale=60)
        fetch = Fetcher("v1", SourceUnavailableError())
        await lookups.get("k", fetch)
        clock.now += 6
        with caplog.at_level(logging.WARNING, logger="runnerpool.lb._cache"):
            assert await lookups.get("k", fetch) == "v1"
        assert "unavailable" in caplog.text
        # Not asked again until a time to live later.
        assert await lookups.get("k", fetch) == "v1"
        assert fetch.calls == 2
        clock.now += 5
        assert await lookups.get("k", fetch) == "v1"
        assert fetch.calls == 3

    async def test_not_past_the_window(self) -> None:
        """Past ttl + max_stale from its fetch, an entry is no longer served: 503."""
        clock = Clock()
        lookups = cache(clock, ttl=5, max_stale=60)
        fetch = Fetcher("v1", SourceUnavailableError())
        await lookups.get("k", fetch)
        clock.now += 64.9
        assert await lookups.get("k", fetch) == "v1"
        clock.now += 0.1
        with pytest.raises(SourceUnavailableError):
            await lookups.get("k", fetch)

    async def test_stale_ends_at_window_even_when_rechecked_late(self) -> None:
        """A stale entry's next check is never later than the end of its window."""
        clock = Clock()
        lookups = cache(clock, ttl=5, max_stale=7)
        fetch = Fetcher("v1", SourceUnavailableError())
        await lookups.get("k", fetch)
        clock.now += 10  # stale served; next check at min(15 + 5, 12)
        assert await lookups.get("k", fetch) == "v1"
        clock.now += 2
        with pytest.raises(SourceUnavailableError):
            await lookups.get("k", fetch)

    async def test_zero_max_stale_is_fn(self) -> None:
        """With max_stale 0, an expired entry is not served while unavailable, as in Fn."""
        clock = Clock()
        lookups = cache(clock, max_stale=0)
        fetch = Fetcher("v1", SourceUnavailableError())
        await lookups.get("k", fetch)
        clock.now += 5
        with pytest.raises(SourceUnavailableError):
            await lookups.get("k", fetch)

    async def test_unavailable_without_entry(self) -> None:
        """With nothing cached, unavailability is raised."""
        lookups = cache(Clock())
        with pytest.raises(SourceUnavailableError):
            await lookups.get("k", Fetcher(SourceUnavailableError()))

    async def test_recovers(self) -> None:
        """Once the source answers again, the fresh value replaces the stale one."""
        clock = Clock()
        lookups = cache(clock)
        fetch = Fetcher("v1", SourceUnavailableError(), "v2")
        await lookups.get("k", fetch)
        clock.now += 6
        assert await lookups.get("k", fetch) == "v1"
        clock.now += 5
        assert await lookups.get("k", fetch) == "v2"


class TestNegative:
    async def test_not_found_cached_briefly(self) -> None:
        """A not-found is served for negative_ttl, then asked again."""
        clock = Clock()
        lookups = cache(clock, negative_ttl=1)
        fetch = Fetcher(FnNotFoundError(), "v")
        for _ in range(3):
            with pytest.raises(FnNotFoundError) as caught:
                await lookups.get("k", fetch)
            assert caught.value.status_code == 404
        assert fetch.calls == 1
        clock.now += 1
        assert await lookups.get("k", fetch) == "v"

    async def test_zero_negative_ttl_is_fn(self) -> None:
        """With negative_ttl 0, a not-found is never cached, as in Fn."""
        clock = Clock()
        lookups = cache(clock, negative_ttl=0)
        fetch = Fetcher(FnNotFoundError(), "v")
        with pytest.raises(FnNotFoundError):
            await lookups.get("k", fetch)
        assert await lookups.get("k", fetch) == "v"

    async def test_not_found_replaces_a_success(self) -> None:
        """An object found gone on refresh is gone: not served stale."""
        clock = Clock()
        lookups = cache(clock, negative_ttl=0)
        fetch = Fetcher("v", FnNotFoundError())
        await lookups.get("k", fetch)
        clock.now += 5
        with pytest.raises(FnNotFoundError):
            await lookups.get("k", fetch)
        with pytest.raises(FnNotFoundError):
            await lookups.get("k", fetch)
        assert fetch.calls == 3

    async def test_negative_entry_not_served_stale(self) -> None:
        """An expired not-found is not served while the source is unavailable."""
        clock = Clock()
        lookups = cache(clock)
        fetch = Fetcher(FnNotFoundError(), SourceUnavailableError())
        with pytest.raises(FnNotFoundError):
            await lookups.get("k", fetch)
        clock.now += 1
        with pytest.raises(SourceUnavailableError):
            await lookups.get("k", fetch)


class TestPurge:
    async def test_old_entries_purged(self) -> None:
        """Entries past every window are dropped on a later store, bounding the cache."""
        clock = Clock()
        lookups = cache(clock, ttl=5, max_stale=10, negative_ttl=1)
        for index in range(100):
            with pytest.raises(FnNotFoundError):
                await lookups.get(("missing", index), Fetcher(FnNotFoundError()))
        await lookups.get("kept", Fetcher("v"))
        assert len(lookups) == 101
        clock.now += 6
        await lookups.get("new", Fetcher("v"))
        # The negative entries are gone; "kept" may still be served stale.
        assert len(lookups) == 2
        clock.now += 15
        await lookups.get("newer", Fetcher("v"))
        assert len(lookups) == 1
