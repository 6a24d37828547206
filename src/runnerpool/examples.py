"""Example functions for the in-process executor, used by the tests and ``dev --in-process``.

Each is registered under an image name: ``echo``, ``hello``, ``slow``, ``fail``, ``hungry``:
the in-process twins of the Fn FDK functions in the repository's ``examples/``.
"""

from __future__ import annotations

import asyncio
import json

from ._errors import FuncError
from .runner import FunctionRequest, FunctionResponse, Handler

__all__ = ["FUNCTIONS", "echo", "fail", "hello", "hungry", "slow"]


async def echo(request: FunctionRequest) -> FunctionResponse:
    """Answer the request body, with its content type."""
    content_type = request.headers.get("Content-Type", ["application/octet-stream"])[0]
    return FunctionResponse(request.body, headers={"Content-Type": content_type})


async def hello(request: FunctionRequest) -> FunctionResponse:
    """Greet the ``name`` of a JSON body (``{"name": "Ada"}``), or the world."""
    name = "world"
    if request.body:
        try:
            name = str(json.loads(request.body).get("name", name))
        except (ValueError, AttributeError):
            raise FuncError('body must be JSON such as {"name": "Ada"}', status_code=400) from None
    body = json.dumps({"message": f"Hello, {name}!"}).encode()
    return FunctionResponse(body, headers={"Content-Type": "application/json"})


async def slow(request: FunctionRequest) -> FunctionResponse:
    """Sleep the number of seconds in the body (default 1), then answer how long it slept."""
    seconds = float(request.body or b"1")
    await asyncio.sleep(seconds)
    return FunctionResponse(f"slept {seconds:g}s".encode(), headers={"Content-Type": "text/plain"})


async def fail(request: FunctionRequest) -> FunctionResponse:
    """Always fail, as a function with a bug does (502 "function failed")."""
    raise RuntimeError("this function always fails")


async def hungry(request: FunctionRequest) -> FunctionResponse:
    """Hold the megabytes given in the body (default 64) for the call.

    In this process nothing limits it; the FDK bundle of the same name runs under its
    function's memory limit.
    """
    megabytes = int(request.body or b"64")
    block = bytearray(megabytes * 1024 * 1024)
    return FunctionResponse(f"held {len(block) // (1024 * 1024)} MB".encode())


#: The examples by image name.
FUNCTIONS: dict[str, Handler] = {
    "echo": echo,
    "hello": hello,
    "slow": slow,
    "fail": fail,
    "hungry": hungry,
}
