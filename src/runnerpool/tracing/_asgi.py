"""The load balancer's span of each call: an ASGI middleware around the front end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._names import CALL_ID, HTTP_METHOD, HTTP_ROUTE, HTTP_STATUS, URL_PATH

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TraceRequests"]

_INVOKE = "/invoke/"
_TRIGGER = "/t/"


def _route(path: str) -> str | None:
    """Return the route of a call's path (low cardinality, for the span's name), if a call."""
    if path.startswith(_INVOKE):
        return "/invoke/{fn_id}"
    if path.startswith(_TRIGGER):
        return "/t/{app_name}/{source}" if "/" in path[len(_TRIGGER) :] else "/t/{app_name}"
    return None


class TraceRequests:
    """Trace each call (``/invoke/...``, ``/t/...``) with a server span; pass the rest through.

    The span continues the client's trace if its request carries one (``traceparent``), and
    is current while the call is placed, so each placement attempt is its child. It is named
    after the route (``POST /invoke/{fn_id}``) and records the method, route, path, status
    and Fn's call id; the placement adds the function and app ids.

    Args:
        app: The front end.
        tracer: Makes the spans.
    """

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer
        # The request headers the propagator reads, as ASGI spells them: only these are decoded.
        self._fields = frozenset(
            name.lower().encode("latin-1") for name in propagate.get_global_textmap().fields
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; trace it if it is a call."""
        route = None if scope["type"] != "http" else _route(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        fields = self._fields
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in fields
        }
        # No trace headers (the common case): the span is a root, and the propagators are
        # not run over nothing.
        parent = propagate.extract(carrier) if carrier else None
        method: str = scope["method"]
        span = self.tracer.start_span(
            f"{method} {route}",
            parent,
            SpanKind.SERVER,
            {HTTP_METHOD: method, HTTP_ROUTE: route, URL_PATH: scope["path"]},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 500  # what uvicorn answers if the application fails before answering
        noted = send
        if span.is_recording():  # a sampled-out call pays for no more than its context

            async def send_and_note(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    for name, value in message.get("headers", ()):
                        if name.lower() == b"fn-call-id":
                            span.set_attribute(CALL_ID, value.decode("latin-1"))
                await send(message)

            noted = send_and_note
        try:
            await self.app(scope, receive, noted)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(token)
            if span.is_recording():
                span.set_attribute(HTTP_STATUS, status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
