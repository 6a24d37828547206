"""Runner status for the least-loaded placer: polled in the background by the load balancer.

The least-loaded placer ranks a function's two preferred runners by this load balancer's own
in-flight counts and, while it is fresh, by the runner's reported ``active_request_count``,
which also counts other load balancers' calls. Something must ask the runners; in the load
balancer it is this poller, twice per ``status_max_age``, so a status is always fresh while
runners answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .._call import BufferedCall
from .._model import Call
from .._resource import AsyncResource

if TYPE_CHECKING:
    from .._interfaces import RunnerPool
    from ..placers import LeastLoadedPlacer

__all__ = ["StatusPoller"]

logger = logging.getLogger(__name__)


class StatusPoller(AsyncResource):
    """Asks every runner of a pool for its status, periodically, for a least-loaded placer.

    Args:
        placer: Records the statuses.
        pool: The runners.
        interval: Seconds between two rounds (default: half the placer's status lifetime).

    Attributes:
        rounds: How many rounds of polling have completed.
    """

    def __init__(
        self, placer: LeastLoadedPlacer, pool: RunnerPool, interval: float | None = None
    ) -> None:
        self.placer = placer
        self.pool = pool
        self.interval = placer.status_max_age / 2 if interval is None else interval
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        # Static pools ignore the call; dynamic ones may use it to pick runners.
        self._probe = BufferedCall(Call(id="status-poll"))

    async def poll_once(self) -> None:
        """Ask every runner once and record the answers (failures are left out)."""
        runners = await self.pool.runners(self._probe)
        await self.placer.refresh_status(runners)
        self.rounds += 1

    def start(self) -> None:
        """Start polling in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                logger.warning("Polling runner status failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
