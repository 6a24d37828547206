"""A fixed list of gRPC runners: the port of Fn's ``static_pool.go``, with outlier ejection."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._interfaces import Runner, RunnerPool
from .._resource import AsyncResource, warn_renamed
from ..rpc import DEFAULT_MAX_CONNECTIONS, GrpcRunner, Keepalive
from ._outlier import OutlierDetector, OutlierPolicy

if TYPE_CHECKING:
    from .._interfaces import RunnerCall

__all__ = ["StaticRunnerPool"]


class StaticRunnerPool(AsyncResource, RunnerPool):
    """The same runners for every call, one :class:`~runnerpool.GrpcRunner` per address.

    Creating the pool never fails for an unreachable address: runners connect when first
    used, and a runner that cannot be reached is skipped by the placer.

    The pool watches its runners (see :class:`~runnerpool.pools.OutlierDetector`): a runner
    that keeps failing is ejected, and placers pass over it until a probe finds it answering
    again. Probing starts with the first :meth:`runners` call (or :meth:`start`) and stops
    at :meth:`aclose` (or the end of ``async with``).

    Args:
        addresses: ``host:port`` of each runner, in order (duplicates are kept, as in Fn).
        ssl: TLS for every runner (see :func:`~runnerpool.client_tls`).
        connect_timeout: Seconds before an unreachable runner is skipped (ignored when
            ``keepalive`` is given).
        keepalive: Keepalive and connect settings of every connection.
        max_connections: Connections to each runner at most.
        outlier_policy: When runners are ejected and probed.

    Raises:
        ValueError: If an address is not ``host:port``.
    """

    def __init__(
        self,
        addresses: Sequence[str] = (),
        *,
        ssl: ssl.SSLContext | None = None,
        connect_timeout: float = 1.0,
        keepalive: Keepalive | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        outlier_policy: OutlierPolicy | None = None,
    ) -> None:
        keepalive = Keepalive(connect_timeout=connect_timeout) if keepalive is None else keepalive
        self.detector = OutlierDetector(addresses, self._probe, outlier_policy)
        self._runners: tuple[GrpcRunner, ...] = tuple(
            GrpcRunner(
                address,
                ssl=ssl,
                keepalive=keepalive,
                max_connections=max_connections,
                health=self.detector.health(address),
            )
            for address in addresses
        )
        self._by_address = {runner.address: runner for runner in self._runners}
        self._started = False

    def start(self) -> None:
        """Start probing the runners in the background (needs a running event loop)."""
        if not self._started:
            self._started = True
            self.detector.start()

    async def _probe(self, address: str) -> object:
        return await self._by_address[address].status()

    def readiness(self) -> tuple[int, int]:
        """Return how many runners are reachable (not ejected), and how many there are."""
        return self.detector.reachable, len(self.detector.runners)

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """Return every runner, in the order given (ejected ones too: placers pass over them)."""
        if not self._started:
            self.start()
        return self._runners

    async def shutdown(self) -> None:
        """Deprecated name of :meth:`aclose`."""
        warn_renamed(self, "shutdown()")
        await self.aclose()

    async def aclose(self) -> None:
        """Stop probing; close every runner (calls in flight finish first); raise the first error.

        Closing twice is harmless.

        Raises:
            Exception: The first error a runner raised while closing.
        """
        await self.detector.aclose()
        results = await asyncio.gather(
            *(runner.aclose() for runner in self._runners), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                raise result
