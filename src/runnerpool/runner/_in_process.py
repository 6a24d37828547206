"""An executor that runs Python callables registered by image name, in the runner's process.

Used by the tests, ``runnerpool runner --functions`` and ``runnerpool dev --in-process``: it
shows the runner's protocol and admission without starting processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from .._errors import APIError, CallTimeoutError, FuncError, FunctionFailedError
from .._resource import AsyncResource

if TYPE_CHECKING:
    from .._interfaces import LogWriter
    from .._model import Call
    from ._capacity import Capacity, Reservation
    from ._executor import Execution

__all__ = ["FunctionRequest", "FunctionResponse", "Handler", "InProcessExecutor"]


@dataclass(frozen=True, slots=True, eq=False)
class FunctionRequest:
    """What a registered function receives.

    Attributes:
        body: The whole request body.
        headers: The invoke request's headers (a name may have several values).
        config: The function's configuration (Fn's ``FN_*`` variables included).
        call: The whole call model.
        log: Where the function may write log lines.
    """

    body: bytes
    headers: Mapping[str, list[str]]
    config: Mapping[str, str]
    call: Call
    log: LogWriter


@dataclass(frozen=True, slots=True)
class FunctionResponse:
    """What a registered function may return (a plain ``bytes`` or ``str`` means 200).

    Attributes:
        body: The response body.
        status_code: The response status.
        headers: Response headers.
    """

    body: bytes = b""
    status_code: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


#: A registered function: it gets the request and returns the response, or raises.
Handler: TypeAlias = Callable[[FunctionRequest], Awaitable["FunctionResponse | bytes | str"]]


class InProcessExecutor(AsyncResource):
    """Runs registered async Python callables, each until its call's deadline.

    Args:
        functions: Image name to handler, e.g. ``{"example/echo": echo}``. The call's
            ``image`` picks the handler.

    Raises:
        FuncError: From :meth:`execute`, 502, for an image with no handler.
    """

    def __init__(self, functions: Mapping[str, Handler]) -> None:
        self._functions = dict(functions)

    def admit(
        self,
        model: Call,
        slot_key: bytes | None,
        extensions: Mapping[str, str],
        capacity: Capacity,
    ) -> Reservation | None:
        """Reserve the call's memory and a call slot for the call's run, if they fit now."""
        return capacity.try_reserve(model.memory)

    def register(self, image: str, handler: Handler) -> None:
        """Add or replace the handler of an image."""
        self._functions[image] = handler

    async def execute(self, execution: Execution) -> None:
        """Run the call's handler and write its response.

        Raises:
            CallTimeoutError: If the handler outlives the call's deadline (504).
            APIError: What the handler raised, kept as it is.
            FunctionFailedError: If the handler raised anything else (502).
        """
        handler = self._functions.get(execution.model.image)
        if handler is None:
            raise FuncError(f"image {execution.model.image!r} is not known to this runner")
        body = b"".join([chunk async for chunk in execution.body])
        request = FunctionRequest(
            body=body,
            headers=execution.model.headers,
            config=execution.model.config,
            call=execution.model,
            log=execution.stderr,
        )
        remaining = None if execution.deadline is None else execution.deadline - time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                result = await handler(request)
        except TimeoutError:
            raise CallTimeoutError from None
        except APIError:
            raise
        except Exception as exc:
            execution.stderr.write(f"function raised {exc!r}\n".encode())
            raise FunctionFailedError from exc
        response = _as_response(result)
        for name, value in response.headers.items():
            execution.response.add_header(name, value)
        execution.response.write_header(response.status_code)
        if response.body:
            await execution.response.write(response.body)

    async def aclose(self) -> None:
        """Nothing to release: handlers run inside the calls that await them."""


def _as_response(result: FunctionResponse | bytes | str) -> FunctionResponse:
    if isinstance(result, FunctionResponse):
        return result
    if isinstance(result, str):
        return FunctionResponse(result.encode())
    return FunctionResponse(bytes(result))
