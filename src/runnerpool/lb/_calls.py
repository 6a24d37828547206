"""Building a call's model from an invoke request, as Fn's ``FromHTTPFnRequest`` does."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .._model import Call

if TYPE_CHECKING:
    from ._registry import App, Function

__all__ = ["build_model", "canonical_header"]


def canonical_header(name: str) -> str:
    """Write a header name as Go's ``http.Header`` keeps it: ``content-type`` → ``Content-Type``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def build_model(
    function: Function,
    *,
    call_id: str,
    url: str,
    method: str,
    headers: Iterable[tuple[str, str]],
    detached: bool,
    app: App | None = None,
    trigger_id: str = "",
) -> Call:
    """Return the model of a new call of ``function``.

    As Fn builds it: the app's config merged with the function's (the function wins), plus
    ``FN_MEMORY``, ``FN_TYPE`` (``"sync"`` even for detached calls, as in Fn), ``FN_FN_ID`` and
    ``FN_APP_ID``; the app's annotations merged with the function's; the request's headers
    and full URL; the created time.

    Args:
        function: The function invoked.
        call_id: The new call's id.
        url: The full request URL.
        method: The request method.
        headers: The request headers, a name may repeat.
        detached: Whether the call is detached (``Fn-Invoke-Type: detached``).
        app: The app the call is made under (a trigger's); the function's by default.
        trigger_id: The id of the trigger that made the call, if any.
    """
    app = function.app if app is None else app
    config = {
        **app.config,
        **function.config,
        "FN_MEMORY": str(function.memory),
        "FN_TYPE": "sync",
        "FN_FN_ID": function.id,
        "FN_APP_ID": app.id,
    }
    annotations = {
        key: json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        for key, value in {**app.annotations, **function.annotations}.items()
    }
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(canonical_header(name), []).append(value)
    return Call(
        id=call_id,
        image=function.image,
        type="detached" if detached else "sync",
        url=url,
        method=method,
        timeout=function.timeout,
        idle_timeout=function.idle_timeout,
        memory=function.memory,
        config=config,
        annotations=annotations,
        headers=merged,
        syslog_url=app.syslog_url,
        created_at=datetime.now(UTC),
        app_id=app.id,
        app_name=app.name,
        fn_id=function.id,
        trigger_id=trigger_id,
    )
