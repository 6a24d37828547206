"""The calls' hot path: ``POST /invoke/{fn_id}`` and the HTTP triggers as a plain ASGI handler.

Every call used to go through Starlette's router, ``Request``, ``Response`` and an extra task
for its placement; here the handler reads the ASGI scope as it is, awaits the placement in
its own task (a watcher task cancels it if the client goes away), and sends headers built
from constant parts. The answers are byte for byte those of the Starlette route it replaces
(``tests/lb/test_wire.py`` pins them); :class:`FrontEnd` sends everything else to Starlette.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from .._call import BufferedCall, BufferedResponse
from .._errors import APIError, RequestTooLargeError
from .._ids import new_id
from .._tasks import watch
from ._agent import DetachedResponse
from ._requests import TRIGGER_METHODS, call_model
from ._triggers import trigger_response

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import Receive, Scope, Send

    from ._agent import LBAgent
    from ._sources import FunctionSource

__all__ = ["CLIENT_CLOSED", "FrontEnd", "InvokeHandler", "error_parts"]

logger = logging.getLogger(__name__)

#: Fn's status for a request whose client went away (nginx's convention; no body is sent).
CLIENT_CLOSED = 444
#: Response headers the load balancer sets itself rather than copying from the runner.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_JSON_TYPE = (b"content-type", b"application/json; charset=utf-8")
_RETRY_AFTER = (b"retry-after", b"15")
_CONTENT_LENGTH = b"content-length"
_CALL_ID = b"fn-call-id"
_NO_BODY = (_CONTENT_LENGTH, b"0")
_TRIGGER_METHODS = frozenset(TRIGGER_METHODS)
_INVOKE = "/invoke/"
_TRIGGER = "/t/"

Headers = list[tuple[bytes, bytes]]


def error_parts(status: int, message: str, call_id: str | None = None) -> tuple[Headers, bytes]:
    """Return the headers and body of Fn's error answer: ``{"message": ...}`` and a newline."""
    body = (json.dumps({"message": message}, separators=(",", ":")) + "\n").encode()
    headers: Headers = [] if call_id is None else [(_CALL_ID, call_id.encode())]
    if status == 503:
        headers.append(_RETRY_AFTER)
    headers += [(_CONTENT_LENGTH, b"%d" % len(body)), _JSON_TYPE]
    return headers, body


def _error_for(error: BaseException, call_id: str) -> tuple[int, Headers, bytes]:
    if isinstance(error, APIError):
        # A runner's code-0 error (undecodable input) is a server error, not an HTTP 200
        # with an error body as in Fn.
        status = error.status_code if 400 <= error.status_code <= 599 else 500
        return (status, *error_parts(status, error.message, call_id))
    logger.error("Call %s failed: %r", call_id, error, extra={"call_id": call_id})
    return (500, *error_parts(500, "internal server error", call_id))


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (_CONTENT_LENGTH, b"%d" % len(body))


async def _answer(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InvokeHandler:
    """Serves one call: its model, its body, its placement, its answer.

    Args:
        agent: Places and accounts for the calls.
        source: The functions that may be invoked.
        max_request_size: Refuse request bodies larger than this (413; ``None``: no limit).
        max_response_size: Refuse function responses larger than this (502).
    """

    def __init__(
        self,
        agent: LBAgent,
        source: FunctionSource,
        *,
        max_request_size: int | None,
        max_response_size: int | None,
    ) -> None:
        self.agent = agent
        self.source = source
        self.max_request_size = max_request_size
        self.max_response_size = max_response_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a call routed by Starlette (its ``path_params`` are the route's)."""
        await self.serve(scope, receive, send, scope["path_params"])

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, str | None]
    ) -> None:
        """Serve the call of a request of ``/invoke/{fn_id}`` or of a trigger route."""
        call_id = new_id()
        # Names come in lower case from the server; values are latin-1, as HTTP/1.1's.
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
        ]
        try:
            model = await call_model(
                self.source,
                call_id,
                params=params,
                scheme=scope.get("scheme", "http"),
                method=scope["method"],
                headers=headers,
                raw_path=scope.get("raw_path") or scope["path"].encode(),
                query_string=scope["query_string"],
            )
        except APIError as exc:
            await _answer(send, *_error_for(exc, call_id))
            return
        detached = model.type == "detached"
        # A detached call's writer only waits for the runner's acknowledgement (202).
        writer = DetachedResponse() if detached else BufferedResponse(self.max_response_size)
        call = BufferedCall(model, response_writer=writer)
        length = next((value for name, value in headers if name == "content-length"), "")
        limit = self.max_request_size
        body_read = asyncio.Event()

        async def read_body() -> bytearray:
            if limit is not None and length.isdigit() and int(length) > limit:
                raise RequestTooLargeError  # refused unread, before any runner is tried
            # Kept as read: copying it into bytes would hold the body twice.
            body = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    # The client left during its upload: a cancelled call, as in Fn.
                    raise asyncio.CancelledError
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if limit is not None and len(body) > limit:
                    raise RequestTooLargeError
            body_read.set()
            return body

        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def client_gone() -> None:
            nonlocal gone
            # After the body, the next ASGI message can only be the disconnect.
            await body_read.wait()
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()  # the call's placement runs in the handler's task: cancel it

        watching = asyncio.create_task(client_gone())
        watch(watching, logger, "Watching the client of call %s", call_id)
        submit = self.agent.submit_detached if detached else self.agent.submit
        error: Exception | None = None
        try:
            await submit(call, read_body)
        except asyncio.CancelledError:
            if gone:
                task.uncancel()  # the client left: its call is cancelled, not this handler
            elif task.cancelling():
                raise  # the server is stopping this handler
            # The client went away (a detached call's placement goes on).
            await _answer(send, CLIENT_CLOSED, [(_CALL_ID, call_id.encode()), _NO_BODY], b"")
            return
        except Exception as exc:
            error = exc
        finally:
            watching.cancel()
        if gone:
            # The placement ended as the client left: its outcome is the answer, as before.
            task.uncancel()
        if error is not None:
            await _answer(send, *_error_for(error, call_id))
        elif detached:
            await _answer(send, 202, [(_CALL_ID, call_id.encode()), _NO_BODY], b"")
        else:
            await self._answer_call(send, call, call_id, trigger=bool(model.trigger_id))

    async def _answer_call(
        self, send: Send, call: BufferedCall, call_id: str, *, trigger: bool
    ) -> None:
        written = call.response_writer
        body = bytes(written.body)
        if trigger:
            try:
                status, mapped = trigger_response(written.status_code or 200, written.headers)
            except APIError as exc:
                await _answer(send, *_error_for(exc, call_id))
                return
            extra = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in mapped]
        else:
            status = written.status_code or 200
            extra = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in written.headers
                if name.lower() not in _HOP_BY_HOP
            ]
        # No length for a status that has no body (1xx, 204, 304), as Starlette did.
        headers: Headers = [] if status < 200 or status in (204, 304) else [_length(body)]
        headers += extra
        headers.append((_CALL_ID, call_id.encode()))
        await _answer(send, status, headers, body)


class FrontEnd:
    """The load balancer's ASGI application: calls to :class:`InvokeHandler`, the rest to ``app``.

    ``POST /invoke/{fn_id}`` and the trigger routes (``/t/{app}``, ``/t/{app}/{source...}``
    with a trigger's method) are matched here as Starlette's router would match them; any
    other request (another method: 405; another path: 404) goes to ``app``.

    Args:
        calls: Serves the calls.
        app: Serves everything else (Starlette).
    """

    def __init__(self, calls: InvokeHandler, app: Starlette) -> None:
        self.calls = calls
        self.app = app
        #: Starlette's state (``state.source``: the function source).
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a call, or pass the request on."""
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(_INVOKE):
                fn_id = path[len(_INVOKE) :]
                if fn_id and "/" not in fn_id and scope["method"] == "POST":
                    await self.calls.serve(scope, receive, send, {"fn_id": fn_id})
                    return
            elif path.startswith(_TRIGGER) and scope["method"] in _TRIGGER_METHODS:
                app_name, slash, source = path[len(_TRIGGER) :].partition("/")
                if app_name:
                    params = {"app_name": app_name, "source": source if slash else None}
                    await self.calls.serve(scope, receive, send, params)
                    return
        await self.app(scope, receive, send)
