"""The load balancer's HTTP front end: Fn's invoke API as an ASGI application.

The calls go to :class:`~runnerpool.lb._invoke.InvokeHandler`, a plain ASGI handler (their hot
path); the other routes are a Starlette application.

Routes: ``POST /invoke/{fn_id}`` (Fn's invoke; ``Fn-Invoke-Type: detached`` for detached
calls), ``ANY /t/{app}[/{source}]`` (Fn's HTTP triggers), ``GET /health`` (liveness),
``GET /ready`` (readiness: some runner is reachable), ``GET /metrics`` (Prometheus text),
``GET /version``. Errors answer ``{"message": ...}`` with Fn's status codes, and every call's
response carries ``Fn-Call-Id``.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import metrics
from ._invoke import FrontEnd, InvokeHandler, error_parts
from ._requests import TRIGGER_METHODS, TRIGGER_ROUTES
from ._settings import LBSettings
from ._sources import as_source

if TYPE_CHECKING:
    from ._agent import LBAgent
    from ._registry import Registry
    from ._sources import FunctionSource

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def error_response(status: int, message: str, call_id: str | None = None) -> Response:
    """Return Fn's error response: ``{"message": ...}`` and a newline, as JSON."""
    headers, body = error_parts(status, message, call_id)
    response = Response(body, status)
    response.raw_headers = headers  # the same bytes as the calls' own errors
    return response


def create_app(
    agent: LBAgent,
    registry: Registry | FunctionSource,
    settings: LBSettings | None = None,
    *,
    exposition: Callable[[], Awaitable[bytes]] | None = None,
) -> FrontEnd:
    """Return the load balancer's ASGI application.

    Calls (``POST /invoke/...`` and the triggers) are served by a plain ASGI handler, every
    other request by Starlette. The function source is ``app.state.source``.

    Args:
        agent: Places and accounts for the calls.
        registry: The functions that may be invoked: a registry (the functions file) or a
            function source such as Fn's API server. The source is ``app.state.source``.
        settings: Its ``max_request_size`` (413 beyond, before any runner is tried) and
            ``max_response_size`` (502 beyond) apply; :class:`LBSettings`' defaults when
            omitted.
        exposition: Returns ``GET /metrics``'s body (this process's metrics when omitted;
            several workers' sum with ``runnerpool lb --workers N``).
    """
    settings = LBSettings() if settings is None else settings
    source = as_source(registry)
    calls = InvokeHandler(
        agent,
        source,
        max_request_size=settings.max_request_size,
        max_response_size=settings.max_response_size,
    )

    async def health(request: Request) -> Response:
        if agent.closing:
            return error_response(503, "shutting down")
        return Response('{"status":"ok"}\n', media_type="application/json")

    async def version(request: Request) -> Response:
        body = json.dumps(
            {"version": importlib.metadata.version("runnerpool")}, separators=(",", ":")
        )
        return Response(body, media_type="application/json; charset=utf-8")

    async def ready(request: Request) -> Response:
        # Readiness: this load balancer has somewhere to send calls. A pool that cannot say
        # (not a StaticRunnerPool) counts as ready.
        if agent.closing:
            return error_response(503, "shutting down")
        readiness = getattr(agent.pool, "readiness", None)
        reachable, total = readiness() if readiness is not None else (1, 1)
        body = json.dumps({"ready": reachable > 0, "reachable": reachable, "runners": total})
        return Response(body + "\n", 200 if reachable > 0 else 503, media_type="application/json")

    async def prometheus(request: Request) -> Response:
        body = metrics.exposition() if exposition is None else await exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return error_response(405, f"Method not allowed: {request.method} {request.url.path}")
        if exc.status_code == 404:
            return error_response(404, f"Path not found: {request.method} {request.url.path}")
        return error_response(exc.status_code, str(exc.detail))

    app = Starlette(
        routes=[
            # Reached only by requests FrontEnd does not serve itself: wrong methods (405).
            Route("/invoke/{fn_id}", calls, methods=["POST"]),
            *(Route(path, calls, methods=TRIGGER_METHODS) for path in TRIGGER_ROUTES),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.source = source
    return FrontEnd(calls, app)
