"""Tasks nobody awaits: their failure is one log line, never "exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runnerpool._tasks import watch

logger = logging.getLogger("runnerpool.tests")


async def fail(error: BaseException) -> None:
    """Raise ``error`` after one turn of the loop."""
    await asyncio.sleep(0)
    raise error


async def settle(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end without retrieving its outcome, then for its callbacks."""
    await asyncio.wait({task})
    await asyncio.sleep(0)


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[str]]:
    """The messages of the running loop's exception handler ("never retrieved" reports)."""
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    yield reported
    loop.set_exception_handler(None)


class TestWatch:
    async def test_failure_is_one_line_with_its_fields(
        self, caplog: pytest.LogCaptureFixture, unretrieved: list[str]
    ) -> None:
        """A failed task is logged once, at the given level, with the call's fields."""
        caplog.set_level(logging.INFO, logger="runnerpool.tests")
        task = asyncio.create_task(fail(ValueError("busy")))
        watch(task, logger, "Call %s", "c1", level=logging.INFO, extra={"call_id": "c1"})
        await settle(task)
        [record] = caplog.records
        assert record.getMessage() == "Call c1: ValueError('busy')"
        assert record.levelno == logging.INFO
        assert record.__dict__["call_id"] == "c1"
        assert record.exc_info is None  # one line: no traceback
        caplog.clear()
        del task, record
        gc.collect()
        assert unretrieved == []

    async def test_unawaited_failure_is_never_reported_as_unretrieved(
        self, caplog: pytest.LogCaptureFixture, unretrieved: list[str]
    ) -> None:
        """Without watch, asyncio reports the lost exception; with it, nothing is lost."""
        caplog.set_level(logging.CRITICAL, logger="runnerpool.tests")
        lost = asyncio.create_task(fail(ValueError("lost")))
        await settle(lost)
        del lost
        gc.collect()
        assert unretrieved == ["Task exception was never retrieved"]
        unretrieved.clear()
        kept = asyncio.create_task(fail(ValueError("kept")))
        watch(kept, logger, "Background work")
        await settle(kept)
        del kept
        gc.collect()
        assert unretrieved == []

    async def test_success_and_cancellation_are_silent(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A task that succeeds, or was cancelled on purpose, logs nothing."""
        caplog.set_level(logging.DEBUG, logger="runnerpool.tests")
        done = asyncio.create_task(asyncio.sleep(0))
        watch(done, logger, "Sleeping")
        cancelled = asyncio.create_task(asyncio.sleep(10))
        watch(cancelled, logger, "Sleeping long")
        await asyncio.sleep(0)
        cancelled.cancel()
        await settle(done)
        await settle(cancelled)
        assert caplog.records == []

    async def test_base_exception_is_an_error(self, caplog: pytest.LogCaptureFixture) -> None:
        """An exception that is not an Exception (KeyboardInterrupt) is logged as an error."""
        caplog.set_level(logging.DEBUG, logger="runnerpool.tests")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        watch(future, logger, "Work", level=logging.INFO)
        future.set_exception(KeyboardInterrupt())
        await asyncio.sleep(0)
        [record] = caplog.records
        assert (record.levelno, record.getMessage()) == (logging.ERROR, "Work: KeyboardInterrupt()")
