"""Run a runner until SIGINT or SIGTERM, then drain: what ``runnerpool runner`` calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable

from .._process_metrics import register_process_collectors
from ._capacity import Capacity
from ._executor import Executor
from ._logs import LogStreamer
from ._metrics import RunnerMetrics
from ._metrics_server import MetricsServer
from ._server import RunnerServer
from ._service import RunnerService

__all__ = ["serve_runner"]

logger = logging.getLogger(__name__)


async def serve_runner(
    executor: Executor,
    *,
    host: str = "127.0.0.1",
    port: int = 9190,
    capacity: Capacity | None = None,
    max_request_size: int | None = None,
    max_response_size: int | None = None,
    ssl: ssl.SSLContext | None = None,
    drain_timeout: float | None = None,
    on_ready: Callable[[RunnerServer], None] | None = None,
    log_streamer: LogStreamer | None = None,
    metrics: RunnerMetrics | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    on_metrics: Callable[[str], None] | None = None,
) -> None:
    """Serve a runner until SIGINT or SIGTERM, then drain and return.

    Draining: new calls get the 503 NACK (the load balancer places them elsewhere), calls in
    flight finish (or are cancelled after ``drain_timeout``), then the server closes.

    Args:
        executor: Runs the admitted calls.
        host: Address to listen on.
        port: Port to listen on (0: any free port).
        capacity: Memory and call slots.
        max_request_size: Largest request body accepted, in bytes.
        max_response_size: Largest response body accepted, in bytes.
        ssl: TLS for the server.
        drain_timeout: Seconds to wait for calls in flight when stopping.
        on_ready: Called once the server listens (it gets the server, and so its port).
        log_streamer: Serves ``StreamLogs`` (the functions' output).
        metrics: The runner's metrics (give the executor the same, to count its processes
            and environments).
        metrics_host: Address the metrics are served on (loopback by default).
        metrics_port: Serve ``GET /metrics`` on this port (0: any free port); ``None``, the
            default: not served.
        on_metrics: Called with the metrics server's ``host:port`` once it listens.

    Raises:
        OSError: If an address cannot be listened on.
    """
    service = RunnerService(
        executor,
        capacity=capacity,
        max_request_size=max_request_size,
        max_response_size=max_response_size,
        log_streamer=log_streamer,
        metrics=metrics,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if metrics_port is not None:
                register_process_collectors(service.metrics.registry)
                exporter = MetricsServer(
                    service.metrics.registry, host=metrics_host, port=metrics_port
                )
                await stack.enter_async_context(exporter)
                if on_metrics is not None:
                    on_metrics(exporter.address)
            server = await stack.enter_async_context(
                RunnerServer(service, host=host, port=port, ssl=ssl, drain_timeout=drain_timeout)
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
