"""GET /metrics of a runner over HTTP: prometheus_client's ASGI app, served by uvicorn.

Why not prometheus_client's ``start_http_server``: it serves from a thread, and the runner's
gauges are read from the event loop's objects (its processes, its capacity) at each scrape;
served on the loop, a scrape never sees them half-changed. uvicorn serves the load balancer
already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import make_asgi_app

from .._resource import AsyncResource
from .._sockets import listening_socket
from .._uvicorn_private import HookedServer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["MetricsServer"]

logger = logging.getLogger(__name__)


class _Server(HookedServer):
    """uvicorn without its signal handling (the runner drains on SIGTERM itself).

    It tells when it serves.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def handle_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class MetricsServer(AsyncResource):
    """Serves a registry's metrics at ``GET /metrics`` (any path answers the same).

    Use it as an async context manager, or call :meth:`start` and :meth:`aclose`.

    Args:
        registry: The metrics to serve.
        host: Address to listen on (loopback by default: metrics tell what runs here).
        port: Port to listen on (0: any free port).
    """

    def __init__(
        self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._host = host
        self._port = port
        config = uvicorn.Config(
            make_asgi_app(registry),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = _Server(config)
        self._serving: asyncio.Task[None] | None = None
        self.port = port

    @property
    def address(self) -> str:
        """``host:port`` the server listens on (the port known once started)."""
        return f"{self._host}:{self.port}"

    async def start(self) -> None:
        """Listen and serve in the background.

        Raises:
            OSError: If the address cannot be listened on.
        """
        try:
            sock = listening_socket(self._host, self._port)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot serve metrics on {self.address}: {exc.strerror or exc}"
            ) from exc
        self.port = sock.getsockname()[1]
        serving = self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self._server.ready.is_set():
            self._serving = None
            serving.result()  # uvicorn stopped at once: its error, if any
            raise OSError(f"metrics server on {self.address} did not start")
        logger.info("Runner metrics on http://%s/metrics", self.address)

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def aclose(self) -> None:
        """Stop serving (closing twice is harmless)."""
        serving, self._serving = self._serving, None
        if serving is None:
            return
        self._server.should_exit = True
        await serving
