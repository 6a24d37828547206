"""Hello: greets the ``name`` of a JSON body (``{"name": "Ada"}``), or the world."""

from __future__ import annotations

import contextlib
import io
import json

from fdk import context, response


def handler(ctx: context.InvokeContext, data: io.BytesIO | None = None) -> response.Response:
    """Answer a JSON greeting."""
    name = "world"
    raw = data.getvalue() if data is not None else b""
    if raw:
        with contextlib.suppress(ValueError, AttributeError):
            name = str(json.loads(raw).get("name", name))
    return response.Response(
        ctx,
        response_data=json.dumps({"message": f"Hello, {name}!"}),
        headers={"Content-Type": "application/json"},
    )
