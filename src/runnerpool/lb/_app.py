"""The load balancer's HTTP front end: Fn's invoke API as an ASGI (Starlette) application.

Routes: ``POST /invoke/{fn_id}`` (Fn's invoke; ``Fn-Invoke-Type: detached`` for detached
calls), ``ANY /t/{app}[/{source}]`` (Fn's HTTP triggers), ``GET /health`` (liveness),
``GET /ready`` (readiness: some runner is reachable), ``GET /metrics`` (Prometheus text),
``GET /version``. Errors answer ``{"message": ...}`` with Fn's status codes, and every call's
response carries ``Fn-Call-Id``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .. import metrics
from .._call import BufferedCall, BufferedResponse
from .._errors import APIError, RequestTooLargeError
from .._ids import new_id
from .._tasks import watch
from ._requests import TRIGGER_METHODS, TRIGGER_ROUTES, call_model
from ._sources import as_source
from ._triggers import trigger_response

if TYPE_CHECKING:
    from ._agent import LBAgent
    from ._registry import Registry
    from ._sources import FunctionSource

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

#: Fn's status for a request whose client went away (nginx's convention; no body is sent).
CLIENT_CLOSED = 444
#: Response headers the load balancer sets itself rather than copying from the runner.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def error_response(status: int, message: str, call_id: str | None = None) -> Response:
    """Return Fn's error response: ``{"message": ...}`` and a newline, as JSON."""
    headers = {} if call_id is None else {"Fn-Call-Id": call_id}
    if status == 503:
        headers["Retry-After"] = "15"
    body = json.dumps({"message": message}, separators=(",", ":")) + "\n"
    return Response(body, status, headers, media_type="application/json; charset=utf-8")


def _error_for(error: BaseException, call_id: str) -> Response:
    if isinstance(error, APIError):
        # A runner's code-0 error (undecodable input) is a server error, not an HTTP 200
        # with an error body as in Fn.
        status = error.status_code if 400 <= error.status_code <= 599 else 500
        return error_response(status, error.message, call_id)
    logger.error("Call %s failed: %r", call_id, error, extra={"call_id": call_id})
    return error_response(500, "internal server error", call_id)


def create_app(
    agent: LBAgent,
    registry: Registry | FunctionSource,
    *,
    max_request_size: int | None = None,
    max_response_size: int | None = None,
    exposition: Callable[[], Awaitable[bytes]] | None = None,
) -> Starlette:
    """Return the load balancer's ASGI application.

    Args:
        agent: Places and accounts for the calls.
        registry: The functions that may be invoked: a registry (the functions file) or a
            function source such as Fn's API server. The source is ``app.state.source``.
        max_request_size: Refuse request bodies larger than this (413), before any runner
            is tried (``None``: no limit; the CLI's default is 6 MiB).
        max_response_size: Refuse function responses larger than this (502).
        exposition: Returns ``GET /metrics``'s body (this process's metrics when omitted;
            several workers' sum with ``runnerpool lb --workers N``).
    """
    source = as_source(registry)

    async def invoke(request: Request) -> Response:
        call_id = new_id()
        try:
            model = await call_model(source, request, call_id)
        except APIError as exc:
            return _error_for(exc, call_id)
        detached = model.type == "detached"
        call = BufferedCall(model, response_writer=BufferedResponse(max_response_size))
        body_read = asyncio.Event()

        async def read_body() -> bytearray:
            length = request.headers.get("content-length", "")
            if max_request_size is not None and length.isdigit() and int(length) > max_request_size:
                raise RequestTooLargeError  # refused unread, before any runner is tried
            # Kept as read: copying it into bytes would hold the body twice.
            body = bytearray()
            try:
                async for chunk in request.stream():
                    body += chunk
                    if max_request_size is not None and len(body) > max_request_size:
                        raise RequestTooLargeError
            except ClientDisconnect:
                # The client left during its upload: a cancelled call, as in Fn.
                raise asyncio.CancelledError from None
            body_read.set()
            return body

        async def client_gone() -> None:
            # After the body, the next ASGI message can only be the disconnect.
            await body_read.wait()
            while (await request.receive())["type"] != "http.disconnect":
                pass

        submit = agent.submit_detached if detached else agent.submit
        placing = asyncio.create_task(submit(call, read_body))
        watching = asyncio.create_task(client_gone())
        watch(watching, logger, "Watching the client of call %s", call_id)
        try:
            await asyncio.wait({placing, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
        if not placing.done():
            # The client went away: cancel its call (a detached call's placement goes on).
            placing.cancel()
            await asyncio.gather(placing, return_exceptions=True)
        if placing.cancelled():
            return Response(status_code=CLIENT_CLOSED, headers={"Fn-Call-Id": call_id})
        error = placing.exception()
        if error is not None:
            return _error_for(error, call_id)
        if detached:
            return Response(status_code=202, headers={"Fn-Call-Id": call_id})
        written = call.response_writer
        if model.trigger_id:
            try:
                status, headers = trigger_response(written.status_code or 200, written.headers)
            except APIError as exc:
                return _error_for(exc, call_id)
            response = Response(bytes(written.body), status_code=status)
            response.raw_headers.extend(
                (n.encode("latin-1"), v.encode("latin-1")) for n, v in headers
            )
            response.raw_headers.append((b"fn-call-id", call_id.encode()))
            return response
        response = Response(bytes(written.body), status_code=written.status_code or 200)
        response.raw_headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in written.headers
            if name.lower() not in _HOP_BY_HOP
        )
        response.raw_headers.append((b"fn-call-id", call_id.encode()))
        return response

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
            Route("/invoke/{fn_id}", invoke, methods=["POST"]),
            *(Route(path, invoke, methods=TRIGGER_METHODS) for path in TRIGGER_ROUTES),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.source = source
    return app
