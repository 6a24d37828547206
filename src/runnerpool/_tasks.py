"""Tasks that nobody awaits: their outcome is retrieved and a failure logged, as one line.

asyncio reports a task whose exception nobody retrieved only when the task is collected, as a
"Task exception was never retrieved" traceback, late, without the call it belonged to. Every
task that runnerpool starts and may not await goes through :func:`watch` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["watch"]


def watch(
    task: asyncio.Future[Any],
    logger: logging.Logger,
    message: str,
    *args: object,
    level: int = logging.WARNING,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Retrieve the outcome of ``task`` when it ends, and log its exception if it failed.

    A failure is one line: ``message % args``, then ``": "`` and the exception's ``repr``,
    at ``level`` (``ERROR`` for an exception that is not an :class:`Exception`, such as
    ``KeyboardInterrupt``), with ``extra``. A cancelled task is not logged: it was stopped on
    purpose. A task that others await as well can be watched: its exception is then logged
    once here, whoever else retrieves it.

    Args:
        task: The task (or any future).
        logger: Where the failure is logged.
        message: A %-style message naming the work, e.g. ``"Detached call %s"``.
        *args: Its arguments.
        level: The level of the line.
        extra: Fields of the line (``call_id``, ``fn_id``, ...).
    """

    def done(finished: asyncio.Future[Any]) -> None:
        if finished.cancelled():
            return
        error = finished.exception()
        if error is None:
            return
        logger.log(
            level if isinstance(error, Exception) else logging.ERROR,
            "%s: %r",
            message % args if args else message,
            error,
            extra=extra,
        )

    task.add_done_callback(done)
