"""Run a runner until SIGINT or SIGTERM, then drain: what ``runnerpool runner`` calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from .._process_metrics import register_process_collectors
from ._executor import Executor
from ._logs import LogStreamer
from ._metrics import RunnerMetrics
from ._metrics_server import MetricsServer
from ._server import RunnerServer
from ._service import RunnerService
from ._settings import RunnerSettings

__all__ = ["serve_runner"]

logger = logging.getLogger(__name__)


async def serve_runner(
    executor: Executor,
    settings: RunnerSettings | None = None,
    *,
    on_ready: Callable[[RunnerServer], None] | None = None,
    log_streamer: LogStreamer | None = None,
    metrics: RunnerMetrics | None = None,
    on_metrics: Callable[[str], None] | None = None,
) -> None:
    """Serve a runner until SIGINT or SIGTERM, then drain and return.

    Draining: new calls get the 503 NACK (the load balancer places them elsewhere), calls in
    flight finish (or are cancelled after ``settings.drain_timeout``), then the server closes.

    Args:
        executor: Runs the admitted calls.
        settings: Where to listen, capacity, size limits, TLS and the drain timeout
            (:class:`RunnerSettings`' defaults when omitted).
        on_ready: Called once the server listens (it gets the server, and so its port).
        log_streamer: Serves ``StreamLogs`` (the functions' output).
        metrics: The runner's metrics (give the executor the same, to count its processes
            and environments), served when ``settings.metrics_port`` is set.
        on_metrics: Called with the metrics server's ``host:port`` once it listens.

    Raises:
        OSError: If an address cannot be listened on.
    """
    settings = RunnerSettings() if settings is None else settings
    service = RunnerService(
        executor,
        capacity=settings.capacity,
        max_request_size=settings.max_request_size,
        max_response_size=settings.max_response_size,
        log_streamer=log_streamer,
        metrics=metrics,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_port is not None:
                register_process_collectors(service.metrics.registry)
                exporter = MetricsServer(
                    service.metrics.registry,
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                )
                await stack.enter_async_context(exporter)
                if on_metrics is not None:
                    on_metrics(exporter.address)
            server = await stack.enter_async_context(
                RunnerServer(
                    service,
                    host=settings.host,
                    port=settings.port,
                    ssl=settings.ssl,
                    drain_timeout=settings.drain_timeout,
                )
            )
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
            logger.info(
                "Draining: %d call(s) in flight", (await service.status()).active_request_count
            )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    logger.info("Runner stopped")
