"""In-process functions for the drop-in tests, served by ``runner --functions`` (module:FUNCTIONS).

``httpinfo`` answers, as JSON, what it got: the call's fields and headers, and its body. Like
an FDK function answering an HTTP trigger, it sets ``Fn-Http-Status`` (from ``?status=`` of the
request URL, default 200) and prefixes its HTTP headers with ``Fn-Http-H-``; it also sets
headers a trigger's answer must drop.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from runnerpool.examples import FUNCTIONS as EXAMPLES
from runnerpool.runner import FunctionRequest, FunctionResponse, Handler


async def httpinfo(request: FunctionRequest) -> FunctionResponse:
    """Answer what the function got, with the status asked for in ``?status=``."""
    call = request.call
    body = {
        "method": call.method,
        "url": call.url,
        "headers": dict(request.headers),
        "config": dict(request.config),
        "annotations": {key: json.loads(value) for key, value in call.annotations.items()},
        "type": call.type,
        "image": call.image,
        "limits": [call.memory, call.timeout, call.idle_timeout],
        "ids": {
            "app_id": call.app_id,
            "app_name": call.app_name,
            "fn_id": call.fn_id,
            "trigger_id": call.trigger_id,
        },
        "syslog_url": call.syslog_url,
        "body": request.body.decode(),
    }
    query = parse_qs(urlsplit(call.url).query)
    headers = {
        "Content-Type": "application/json",
        "Fn-Http-H-X-Custom": "yes",
        "X-Plain": "dropped",
        "Fn-Fdk-Version": "fdk-python/test",
    }
    if "status" in query:
        headers["Fn-Http-Status"] = query["status"][0]
    raw_status = int(query.get("raw", ["200"])[0])
    return FunctionResponse(json.dumps(body).encode(), status_code=raw_status, headers=headers)


#: The examples, and ``httpinfo`` under the recorded images.
FUNCTIONS: dict[str, Handler] = {
    **EXAMPLES,
    "httpinfo": httpinfo,
    "httpinfo:0.0.1": httpinfo,
    "httpinfo:0.0.2": httpinfo,
}
