"""Run the load balancer until SIGINT or SIGTERM, then drain: what ``runnerpool lb`` calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import uvicorn

from .. import _tracing, metrics
from .._sockets import listening_socket
from .._tasks import watch
from .._uvicorn_private import HookedServer
from ..placers import LeastLoadedPlacer, create_placer
from ..pools import StaticRunnerPool
from ._access_log import AccessLog
from ._agent import LBAgent
from ._app import create_app
from ._connections import ConnectionTable
from ._fds import (
    ACCEPT_BACKLOG,
    connection_budget,
    handle_accept_errors,
    raise_open_files_limit,
)
from ._limits import reserve_for
from ._protocol import EdgeConfig
from ._ratelog import RateLimitedLog
from ._settings import LBSettings
from ._status_poll import StatusPoller
from ._worker_metrics import WorkerMetrics

if TYPE_CHECKING:
    from ._registry import Registry
    from ._sources import FunctionSource
    from ._workers import WorkerContext

__all__ = ["FN_LATENCY_BUCKETS", "LBServer", "serve_lb"]

logger = logging.getLogger(__name__)

#: The latency buckets (ms) Fn's fnserver registers its views with.
FN_LATENCY_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 10000, 60000, 120000)

#: Seconds uvicorn waits, once the calls are over, for its connections' last responses.
CLOSE_TIMEOUT = 5


class LBServer(HookedServer):
    """uvicorn, with Fn's shutdown order: close the front gate, drain, then stop serving.

    On the first SIGINT or SIGTERM new calls get 503 while the calls in flight (detached ones
    included) finish, or are cancelled after ``drain_timeout``, then the runner pool shuts
    down, then uvicorn stops. A second signal stops at once.

    Args:
        config: uvicorn's configuration.
        agent: The load balancer's agent.
        drain_timeout: Seconds the calls in flight may run once draining (``None``: no
            limit).
        on_hangup: Called on SIGHUP (``None``: SIGHUP keeps its default action).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        agent: LBAgent,
        drain_timeout: float | None = None,
        on_hangup: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(config)
        self.agent = agent
        self.drain_timeout = drain_timeout
        self._on_hangup = on_hangup
        self.ready = asyncio.Event()
        self._draining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then set :attr:`ready`."""
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def handle_signals(self) -> Iterator[None]:
        """Handle SIGINT, SIGTERM (and SIGHUP if asked) on the event loop; do not re-raise them."""
        loop = asyncio.get_running_loop()
        handled = [signal.SIGINT, signal.SIGTERM]
        for signum in handled:
            loop.add_signal_handler(signum, self.stop)
        if self._on_hangup is not None:
            loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
            handled.append(signal.SIGHUP)
        try:
            yield
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    def stop(self) -> None:
        """Start the drain; called again, stop at once."""
        if self._draining is not None:
            self.force_exit = self.should_exit = True
            # Since Python 3.12, closing the server waits for its connections: close them.
            self.close_connections()
            return
        logger.info(
            "Draining: new calls get 503, %d call(s) in flight finish%s",
            self.agent.in_flight,
            "" if self.drain_timeout is None else f" within {self.drain_timeout:g} s",
        )
        self.agent.close_gate()
        self._draining = asyncio.get_running_loop().create_task(self._drain())
        watch(self._draining, logger, "Draining failed")

    async def _drain(self) -> None:
        try:
            try:
                async with asyncio.timeout(self.drain_timeout):
                    await self.agent.wait_idle()
            except TimeoutError:
                logger.warning(
                    "Drain timeout (%g s): cancelling %d call(s) still in flight",
                    self.drain_timeout,
                    self.agent.in_flight,
                )
                self.agent.cancel_calls()
            await self.agent.aclose()
        finally:
            self.should_exit = True


async def serve_lb(
    registry: Registry | FunctionSource,
    runner_addresses: Sequence[str],
    settings: LBSettings | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    on_hangup: Callable[[], object] | None = None,
    worker: WorkerContext | None = None,
) -> None:
    """Serve Fn's invoke API until SIGINT or SIGTERM, placing calls on the given runners.

    Args:
        registry: The functions that may be invoked: a registry (the functions file) or a
            function source such as :class:`~runnerpool.lb.ApiSource`, which is closed when
            serving ends.
        runner_addresses: ``host:port`` of each runner.
        settings: Where to listen, the placer, limits and timeouts (:class:`LBSettings`'
            defaults when omitted).
        on_ready: Called with the base URL (``http://host:port``) once the server listens.
        on_hangup: Called on SIGHUP, e.g. :meth:`LiveRegistry.reload` (``runnerpool lb``
            re-reads its functions file so).
        worker: Serve as one worker of ``runnerpool lb --workers N``: on its socket (the
            settings' host and port are then the shared ones), with ``/metrics`` summed over
            the workers.

    Raises:
        OSError: If the address cannot be listened on.
    """
    settings = LBSettings() if settings is None else settings
    host, port, placer = settings.host, settings.port, settings.placer
    metrics.register_placer_views(settings.metric_tags, FN_LATENCY_BUCKETS)
    metrics.register_lb_agent_views(settings.metric_tags, FN_LATENCY_BUCKETS)
    metrics.register_process_collectors(metrics.REGISTRY)
    chosen = create_placer(placer, settings.placer_config)
    pool = StaticRunnerPool(
        runner_addresses,
        ssl=settings.runner_ssl,
        keepalive=settings.keepalive,
        max_connections=settings.runner_connections,
        outlier_policy=settings.outlier_policy,
    )
    agent = LBAgent(chosen, pool)
    poller = StatusPoller(chosen, pool) if isinstance(chosen, LeastLoadedPlacer) else None
    # One of several workers: /metrics answers the sum of every worker's.
    shared = WorkerMetrics(worker) if worker is not None and worker.count > 1 else None
    app = create_app(
        agent, registry, settings, exposition=None if shared is None else shared.exposition
    )
    limits = settings.edge
    open_files = raise_open_files_limit()
    cap = connection_budget(limits.max_connections, open_files)
    if cap < limits.max_connections:
        logger.warning(
            "Serving at most %d connections, not %d: the open files limit is %d",
            cap,
            limits.max_connections,
            open_files,
        )
    edge_log = RateLimitedLog(logger)
    handle_accept_errors(asyncio.get_running_loop(), edge_log)
    served = AccessLog(app) if settings.access_log else app
    trace = _tracing.active
    config = EdgeConfig(
        served if trace is None else trace.wrap_asgi(served),
        limits=limits,
        connections=ConnectionTable(cap, reserve_for(cap)),
        log=edge_log,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        backlog=ACCEPT_BACKLOG,
        timeout_graceful_shutdown=CLOSE_TIMEOUT,
    )
    server = LBServer(config, agent, settings.drain_timeout, on_hangup)
    # Bound here, not by uvicorn: a port in use is then an OSError for the caller (uvicorn
    # would exit the process), and the port is known before serving.
    sock = listening_socket(host, port) if worker is None else worker.socket
    if shared is not None:
        await shared.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if poller is not None:
        poller.start()
    pool.start()
    metrics.REGISTRY.register(pool.detector)
    if server.ready.is_set():
        bound = sock.getsockname()[1]
        logger.info(
            "Load balancer on http://%s:%d, %d runner(s), placer %s",
            host,
            bound,
            len(runner_addresses),
            placer,
        )
        if on_ready is not None:
            on_ready(f"http://{host}:{bound}")
    try:
        await serving
    finally:
        if shared is not None:
            await shared.aclose()
        edge_log.close()
        metrics.REGISTRY.unregister(pool.detector)
        if poller is not None:
            await poller.aclose()
        await app.state.source.aclose()
    if not agent.closing:  # uvicorn stopped on its own (it could not bind, for instance)
        await agent.aclose()
