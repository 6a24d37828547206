"""``GET /metrics`` summed over the workers of ``runnerpool lb --workers N``.

Each worker serves its own exposition on a Unix socket in the workers' private directory;
the worker a scrape reaches reads its siblings' at once and answers the sum: one exposition,
as if one process had served every call. Counters, histograms and summaries add up exactly
(a scrape reads each worker once); gauges add up too (calls queued and running, open
connections), except the few that describe one process rather than a share of the work,
which are combined as :data:`NOT_ADDITIVE` says.

Why not prometheus_client's multiprocess mode: runnerpool's metrics are views collected by a
custom collector (:mod:`runnerpool._views`), not prometheus_client's value classes, which are
what that mode keeps in shared files; any collector in :data:`runnerpool.metrics.REGISTRY`
works with this one as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from .. import metrics

if TYPE_CHECKING:
    from ._workers import WorkerContext

__all__ = ["NOT_ADDITIVE", "WorkerMetrics", "merge_expositions"]

logger = logging.getLogger(__name__)

#: Seconds a sibling has to send its exposition; one that does not is left out, with a warning.
PEER_TIMEOUT = 2.0

#: Gauges that describe a process, not a share of the work: how the workers' values combine.
NOT_ADDITIVE: dict[str, Callable[[Iterable[float]], float]] = {
    "process_start_time_seconds": min,
    "process_max_fds": max,
    "python_info": max,
}


def merge_expositions(texts: Sequence[str]) -> bytes:
    """Return one exposition (Prometheus text) summing those of several processes.

    Families keep the first text's order, then new ones in order of appearance; samples with
    the same name and labels are summed (or combined as :data:`NOT_ADDITIVE` says).
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = family
                values[family.name] = {}
            merged = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                merged.setdefault(key, []).append(sample.value)
    result = []
    for name, family in families.items():
        combine = NOT_ADDITIVE.get(name, sum)
        out = Metric(name, family.documentation, family.type, family.unit)
        out.samples = [
            Sample(sample_name, dict(labels), combine(parts))
            for (sample_name, labels), parts in values[name].items()
        ]
        result.append(out)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(result))
    return generate_latest(registry)


class _Fixed:
    """A collector that yields given families (to reuse prometheus_client's text format)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        """Yield the families."""
        yield from self.families


class WorkerMetrics:
    """One worker's share of the aggregated ``/metrics``.

    Args:
        context: The worker and where its siblings serve their metrics.
    """

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Serve this worker's own exposition on its Unix socket."""
        path = self.context.metrics_path(self.context.index)
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._answer, path=str(path))

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(metrics.exposition())
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        """Stop serving this worker's exposition."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self.context.metrics_path(self.context.index).unlink(missing_ok=True)

    async def exposition(self) -> bytes:
        """Return every worker's metrics, summed (a sibling that does not answer is left out)."""
        others = [i for i in range(self.context.count) if i != self.context.index]
        texts = await asyncio.gather(*(self._read(i) for i in others))
        own = metrics.exposition().decode()
        return merge_expositions([own, *(text for text in texts if text is not None)])

    async def _read(self, index: int) -> str | None:
        path = self.context.metrics_path(index)
        try:
            async with asyncio.timeout(PEER_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    data = await reader.read()
                finally:
                    writer.close()
                    with contextlib.suppress(ConnectionError):
                        await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            logger.warning("Metrics of worker %d left out: %r", index, exc)
            return None
        return data.decode()
