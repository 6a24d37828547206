"""A fixed list of gRPC runners: the port of Fn's ``static_pool.go``."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._interfaces import Runner, RunnerPool
from ..rpc._client import GrpcRunner

if TYPE_CHECKING:
    from .._interfaces import RunnerCall

__all__ = ["StaticRunnerPool"]


class StaticRunnerPool(RunnerPool):
    """The same runners for every call, one :class:`~runnerpool.GrpcRunner` per address.

    Creating the pool never fails for an unreachable address: runners connect when first
    used, and a runner that cannot be reached is skipped by the placer.

    Args:
        addresses: ``host:port`` of each runner, in order (duplicates are kept, as in Fn).
        ssl: TLS for every runner (see :func:`~runnerpool.client_tls`).
        connect_timeout: Seconds before an unreachable runner is skipped.

    Raises:
        ValueError: If an address is not ``host:port``.
    """

    def __init__(
        self,
        addresses: Sequence[str] = (),
        *,
        ssl: ssl.SSLContext | None = None,
        connect_timeout: float = 1.0,
    ) -> None:
        self._runners: tuple[Runner, ...] = tuple(
            GrpcRunner(address, ssl=ssl, connect_timeout=connect_timeout) for address in addresses
        )

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """Return every runner, in the order given."""
        return self._runners

    async def shutdown(self) -> None:
        """Close every runner (calls in flight finish first); raise the first error after all.

        Raises:
            Exception: The first error a runner raised while closing.
        """
        results = await asyncio.gather(
            *(runner.close() for runner in self._runners), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                raise result
