"""A runner's health check, cached and coalesced: the port of Fn's status tracker.

Many load balancers poll each runner's status. A custom health check may be slow, so its
result is cached for 1.5 s (Fn's ``StatusCallCacheDuration``), and concurrent requests during
a check wait for that one check instead of starting their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeAlias

from .._errors import APIError
from .._ids import new_id
from .._status import RunnerStatus
from .._tasks import watch

__all__ = ["HealthCheck", "HealthTracker"]

logger = logging.getLogger(__name__)

#: A custom health check: gets the Status2 payload ({} for Status), returns ``custom_status``.
#: Raising an :class:`~runnerpool.APIError` reports its code; anything else reports code 0.
HealthCheck: TypeAlias = Callable[[Mapping[str, object]], Awaitable[Mapping[str, str]]]

#: How long a health check may take (Fn's ``StatusCtxTimeout``).
CHECK_TIMEOUT = 60.0


class HealthTracker:
    """Runs a health check at most once per ``ttl``, sharing each result among its readers.

    Args:
        check: The health check.
        ttl: Seconds a result is served from the cache (Fn: 0.5 s + 1 s).
        network_ok: Tells whether the runner's network is up (Fn's barrier file).
    """

    def __init__(
        self, check: HealthCheck, *, ttl: float = 1.5, network_ok: Callable[[], bool] | None = None
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._network_ok = network_ok
        self._cache: RunnerStatus | None = None
        self._expiry = 0.0
        self._running: asyncio.Task[None] | None = None
        self._read_since_refresh = False

    async def get(self, payload: Mapping[str, object]) -> RunnerStatus:
        """Return the latest health, refreshing it if the cached one expired.

        The first reader of a fresh result sees ``cached=False``; later readers see
        ``cached=True`` (as in Fn). A reader that is cancelled does not cancel the check.
        """
        if self._cache is None or time.monotonic() >= self._expiry:
            if self._running is None:
                self._running = asyncio.create_task(self._refresh(payload))
                # Shielded: when every reader was cancelled, nobody else sees its end.
                watch(self._running, logger, "Health check")
            await asyncio.shield(self._running)
        assert self._cache is not None
        cached = self._read_since_refresh
        self._read_since_refresh = True
        return replace(self._cache, cached=cached)

    async def _refresh(self, payload: Mapping[str, object]) -> None:
        try:
            self._cache = await self._run(payload)
            self._read_since_refresh = False
            self._expiry = time.monotonic() + self._ttl
        finally:
            self._running = None

    async def _run(self, payload: Mapping[str, object]) -> RunnerStatus:
        created = datetime.now(UTC)
        start = time.monotonic()
        network_disabled = self._network_ok is not None and not self._network_ok()
        failed, code, text, custom = False, 0, "", {}
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                custom = dict(await self._check(payload))
        except APIError as exc:
            failed, code, text = True, exc.status_code, exc.message
        except Exception as exc:
            logger.warning("Health check failed: %r", exc)
            failed, code, text = True, 0, str(exc) or type(exc).__name__
        return RunnerStatus(
            status_failed=failed,
            status_id=new_id(),
            error_code=code,
            error_str=text,
            created_at=created,
            started_at=created,
            completed_at=datetime.now(UTC),
            execution_duration=time.monotonic() - start,
            is_network_disabled=network_disabled,
            custom_status=custom,
        )
