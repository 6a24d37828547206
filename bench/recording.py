"""Runner functions for the chaos benchmark and the gray-failure tests: ``record`` and more.

The examples, plus one that records its runs.

``record`` appends ``start ID`` and, after sleeping, ``end ID`` to the file named by the
runner's ``RUNNERPOOL_TEST_RECORD`` environment variable; its body is ``ID SECONDS``.
"""

from __future__ import annotations

import asyncio
import os

from runnerpool.examples import FUNCTIONS as EXAMPLES
from runnerpool.runner import FunctionRequest, FunctionResponse, Handler


def _append(line: str) -> None:
    with open(os.environ["RUNNERPOOL_TEST_RECORD"], "a", encoding="utf-8") as file:
        file.write(line + "\n")


async def record(request: FunctionRequest) -> FunctionResponse:
    """Record the run's start, sleep, record its end."""
    call, _, seconds = request.body.decode().partition(" ")
    _append(f"start {call}")
    await asyncio.sleep(float(seconds or 0))
    _append(f"end {call}")
    return FunctionResponse(b"recorded")


FUNCTIONS: dict[str, Handler] = {**EXAMPLES, "record": record}
