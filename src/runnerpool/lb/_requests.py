"""From an HTTP request to a call's model: ``/invoke/{fn_id}`` and ``/t/{app}/{source}``.

Lookups go to the function source in Fn's order: for an invoke, the function (then its app);
for a trigger, the app's id by name, the app, the trigger, then the trigger's function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._calls import build_model
from ._registry import HTTP
from ._triggers import request_url, trigger_headers, trigger_source

if TYPE_CHECKING:
    from .._model import Call
    from ._sources import FunctionSource

__all__ = ["TRIGGER_METHODS", "TRIGGER_ROUTES", "call_model"]

#: The routes of HTTP triggers; ``source`` is the decoded path after the app's name.
TRIGGER_ROUTES = ("/t/{app_name}", "/t/{app_name}/{source:path}")
#: The methods a trigger answers: gin's ``Any``, as Fn routes triggers.
TRIGGER_METHODS = ("GET", "POST", "PUT", "PATCH", "HEAD", "OPTIONS", "DELETE", "CONNECT", "TRACE")


async def call_model(
    source: FunctionSource,
    call_id: str,
    *,
    params: Mapping[str, str | None],
    scheme: str,
    method: str,
    headers: Sequence[tuple[str, str]],
    raw_path: bytes,
    query_string: bytes,
) -> Call:
    """Return the model of the call a request makes, looked up in ``source``.

    Args:
        source: Where the apps, functions and triggers are.
        call_id: The new call's id.
        params: The route's parameters: ``fn_id`` for ``/invoke/{fn_id}``, else
            ``app_name`` and ``source`` (``None`` for ``/t/{app_name}``) of a trigger route.
        scheme: The request's scheme (``http``).
        method: The request's method.
        headers: The request's headers, names in lower case, in order.
        raw_path: The request target's path as received (%-escapes kept).
        query_string: The request target's query.

    Raises:
        NotFoundError: If the app, trigger or function does not exist (404).
        SourceUnavailableError: If the source cannot be reached (503).
    """
    host = next((value for name, value in headers if name == "host"), "")
    url = request_url(scheme, host, raw_path, query_string)
    fn_id = params.get("fn_id")
    if fn_id is not None:
        function = await source.function(fn_id)
        invoke_type = next((value for name, value in headers if name == "fn-invoke-type"), None)
        return build_model(
            function,
            call_id=call_id,
            url=url,
            method=method,
            headers=headers,
            detached=invoke_type == "detached",
        )
    app_name = params["app_name"]
    assert app_name is not None
    app_id = await source.app_id(app_name)
    app = await source.app(app_id)
    trigger = await source.trigger(app_id, HTTP, trigger_source(params.get("source")))
    function = await source.function(trigger.fn_id)
    return build_model(
        function,
        call_id=call_id,
        url=url,
        method=method,
        headers=trigger_headers(headers, method=method, url=url),
        # A trigger's Fn-Invoke-Type is the client's header, renamed: its calls are sync.
        detached=False,
        app=app,
        trigger_id=trigger.id,
    )
