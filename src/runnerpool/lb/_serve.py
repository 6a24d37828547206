"""Run the load balancer until SIGINT or SIGTERM, then drain: what ``runnerpool lb`` calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import uvicorn

from .. import metrics
from .._config import PlacerConfig
from ..placers import LeastLoadedPlacer, create_placer
from ..pools import OutlierPolicy, StaticRunnerPool
from ..rpc import Keepalive
from ..rpc._client import DEFAULT_MAX_CONNECTIONS
from ..rpc._server import listening_socket
from ._agent import LBAgent
from ._app import create_app
from ._status_poll import StatusPoller

if TYPE_CHECKING:
    from ._registry import Registry

__all__ = ["FN_LATENCY_BUCKETS", "LBServer", "serve_lb"]

logger = logging.getLogger(__name__)

#: The latency buckets (ms) Fn's fnserver registers its views with.
FN_LATENCY_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 10000, 60000, 120000)


class LBServer(uvicorn.Server):
    """uvicorn, with Fn's shutdown order: close the front gate, drain, then stop serving.

    On the first SIGINT or SIGTERM new calls get 503 while the calls in flight (detached ones
    included) finish, then the runner pool shuts down, then uvicorn stops. A second signal
    stops at once.

    Args:
        config: uvicorn's configuration.
        agent: The load balancer's agent.
    """

    def __init__(self, config: uvicorn.Config, agent: LBAgent) -> None:
        super().__init__(config)
        self.agent = agent
        self.ready = asyncio.Event()
        self._draining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then set :attr:`ready`."""
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM on the event loop, and do not re-raise them after."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def stop(self) -> None:
        """Start the drain; called again, stop at once."""
        if self._draining is not None:
            self.force_exit = self.should_exit = True
            # Since Python 3.12, closing the server waits for its connections: close them.
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.close()
            return
        logger.info("Draining: new calls get 503, calls in flight finish")
        self.agent.close_gate()
        self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self.agent.aclose()
        finally:
            self.should_exit = True


async def serve_lb(
    registry: Registry,
    runner_addresses: Sequence[str],
    *,
    placer: str = "ch",
    placer_config: PlacerConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_request_size: int | None = None,
    max_response_size: int | None = None,
    runner_ssl: ssl.SSLContext | None = None,
    keepalive: Keepalive | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    outlier_policy: OutlierPolicy | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve Fn's invoke API until SIGINT or SIGTERM, placing calls on the given runners.

    Args:
        registry: The functions that may be invoked.
        runner_addresses: ``host:port`` of each runner.
        placer: A name of :data:`~runnerpool.placers.PLACER_NAMES` (see
            :func:`~runnerpool.create_placer`). With ``"least-loaded"``, the runners' status
            is polled in the background for it.
        placer_config: Placer timeouts and back-off; Fn's defaults when omitted.
        host: Address to listen on.
        port: Port to listen on (0: any free port).
        max_request_size: Largest request body, in bytes (413 beyond).
        max_response_size: Largest function response, in bytes (502 beyond).
        runner_ssl: TLS for the connections to the runners.
        keepalive: Keepalive and connect timeouts of the connections to the runners.
        max_connections: Connections to each runner at most.
        outlier_policy: When runners are ejected and probed (see
            :class:`~runnerpool.pools.OutlierDetector`).
        on_ready: Called with the base URL (``http://host:port``) once the server listens.

    Raises:
        OSError: If the address cannot be listened on.
    """
    metrics.register_placer_views([], FN_LATENCY_BUCKETS)
    metrics.register_lb_agent_views([], FN_LATENCY_BUCKETS)
    chosen = create_placer(placer, placer_config)
    pool = StaticRunnerPool(
        runner_addresses,
        ssl=runner_ssl,
        keepalive=keepalive,
        max_connections=max_connections,
        outlier_policy=outlier_policy,
    )
    agent = LBAgent(chosen, pool)
    poller = StatusPoller(chosen, pool) if isinstance(chosen, LeastLoadedPlacer) else None
    app = create_app(
        agent, registry, max_request_size=max_request_size, max_response_size=max_response_size
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = LBServer(config, agent)
    # Bound here, not by uvicorn: a port in use is then an OSError for the caller (uvicorn
    # would exit the process), and the port is known before serving.
    sock = listening_socket(host, port)
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
        metrics.REGISTRY.unregister(pool.detector)
        if poller is not None:
            await poller.aclose()
    if not agent.closing:  # uvicorn stopped on its own (it could not bind, for instance)
        await agent.aclose()
