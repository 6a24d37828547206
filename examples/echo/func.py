"""Echo: answers the request body, with the request's content type and a header of its own."""

from __future__ import annotations

import io
import logging

from fdk import context, response

logger = logging.getLogger("echo")


def handler(ctx: context.InvokeContext, data: io.BytesIO | None = None) -> response.Response:
    """Answer the body; log its size (the FDK sends log lines to the call's stderr)."""
    body = data.getvalue() if data is not None else b""
    content_type = ctx.Headers().get("content-type", "application/octet-stream")
    if isinstance(content_type, list):
        content_type = content_type[-1]
    logger.info("echo got %d bytes", len(body))
    return response.Response(
        ctx,
        response_data=body,
        headers={"Content-Type": content_type, "X-Echo-Call-Id": ctx.CallID()},
    )
