"""Hello: greets the ``name`` of a JSON body (``{"name": "Ada"}``), or the world."""

import io
import json

from fdk import response


def handler(ctx, data: io.BytesIO = None):
    name = "world"
    raw = data.getvalue() if data is not None else b""
    if raw:
        try:
            name = str(json.loads(raw).get("name", name))
        except (ValueError, AttributeError):
            pass
    return response.Response(
        ctx,
        response_data=json.dumps({"message": f"Hello, {name}!"}),
        headers={"Content-Type": "application/json"},
    )
