"""From an HTTP request to a call's model: ``/invoke/{fn_id}`` and ``/t/{app}/{source}``.

Lookups go to the function source in Fn's order: for an invoke, the function (then its app);
for a trigger, the app's id by name, the app, the trigger, then the trigger's function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._calls import build_model
from ._registry import HTTP
from ._triggers import request_url, trigger_headers, trigger_source

if TYPE_CHECKING:
    from starlette.requests import Request

    from .._model import Call
    from ._sources import FunctionSource

__all__ = ["TRIGGER_METHODS", "TRIGGER_ROUTES", "call_model"]

#: The routes of HTTP triggers; ``source`` is the decoded path after the app's name.
TRIGGER_ROUTES = ("/t/{app_name}", "/t/{app_name}/{source:path}")
#: The methods a trigger answers: gin's ``Any``, as Fn routes triggers.
TRIGGER_METHODS = ("GET", "POST", "PUT", "PATCH", "HEAD", "OPTIONS", "DELETE", "CONNECT", "TRACE")


async def call_model(source: FunctionSource, request: Request, call_id: str) -> Call:
    """Return the model of the call a request makes, looked up in ``source``.

    Args:
        source: Where the apps, functions and triggers are.
        request: A request of ``/invoke/{fn_id}`` or of a trigger route.
        call_id: The new call's id.

    Raises:
        NotFoundError: If the app, trigger or function does not exist (404).
        SourceUnavailableError: If the source cannot be reached (503).
    """
    params = request.path_params
    url = request_url(
        request.url.scheme,
        request.headers.get("host", ""),
        request.scope.get("raw_path") or request.scope["path"].encode(),
        request.scope["query_string"],
    )
    if "app_name" not in params:
        function = await source.function(params["fn_id"])
        return build_model(
            function,
            call_id=call_id,
            url=url,
            method=request.method,
            headers=request.headers.items(),
            detached=request.headers.get("fn-invoke-type") == "detached",
        )
    app_id = await source.app_id(params["app_name"])
    app = await source.app(app_id)
    trigger = await source.trigger(app_id, HTTP, trigger_source(params.get("source")))
    function = await source.function(trigger.fn_id)
    return build_model(
        function,
        call_id=call_id,
        url=url,
        method=request.method,
        headers=trigger_headers(request.headers.items(), method=request.method, url=url),
        # A trigger's Fn-Invoke-Type is the client's header, renamed: its calls are sync.
        detached=False,
        app=app,
        trigger_id=trigger.id,
    )
