"""Echo: answers the request body, with the request's content type and a header of its own."""

import io

from fdk import response


def handler(ctx, data: io.BytesIO = None):
    body = data.getvalue() if data is not None else b""
    content_type = ctx.Headers().get("content-type", "application/octet-stream")
    if isinstance(content_type, list):
        content_type = content_type[-1]
    print("echo got", len(body), "bytes", flush=True)
    return response.Response(
        ctx,
        response_data=body,
        headers={"Content-Type": content_type, "X-Echo-Call-Id": ctx.CallID()},
    )
