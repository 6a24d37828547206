"""The public fakes behave as documented, since users build their tests on them."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import BufferedResponse, ResponseTooLargeError, RunnerBusyError, RunnerClosedError
from runnerpool.testing import (
    FakeCall,
    FakeRunner,
    FakeRunnerPool,
    hang,
    succeed,
)


class TestFakeRunner:
    async def test_script_then_default(self) -> None:
        """Scripted outcomes play in order, then the default for every later attempt."""
        runner = FakeRunner("r", succeed(b"one"), then=succeed(b"later", status_code=201))
        first, second = FakeCall(), FakeCall()
        await runner.try_exec(first)
        await runner.try_exec(second)
        assert bytes(first.response_writer.body) == b"one"
        assert (second.response_writer.status_code, bytes(second.response_writer.body)) == (
            201,
            b"later",
        )

    async def test_capacity_nacks_and_status_counts(self) -> None:
        """At capacity the runner NACKs; status reconciles received, handled and active."""
        runner = FakeRunner("r", then=hang(), capacity=1)
        task = asyncio.create_task(runner.try_exec(FakeCall()))
        await asyncio.sleep(0)
        with pytest.raises(RunnerBusyError):
            await runner.try_exec(FakeCall())
        status = await runner.status()
        assert (status.active_request_count, status.requests_received) == (1, 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert runner.in_flight == 0

    async def test_close_waits_then_refuses(self) -> None:
        """aclose() waits for calls in flight; afterwards attempts get RunnerClosedError."""
        runner = FakeRunner("r", then=succeed(delay=0.02))
        task = asyncio.create_task(runner.try_exec(FakeCall()))
        await asyncio.sleep(0)
        await runner.aclose()
        assert task.done()
        with pytest.raises(RunnerClosedError):
            await runner.try_exec(FakeCall())


class TestFakeRunnerPool:
    async def test_aclose_closes_runners_and_reports_first_error(self) -> None:
        """aclose() closes every runner handed out and raises the first close error."""

        class BadClose(FakeRunner):
            async def aclose(self) -> None:
                await super().aclose()
                raise OSError(f"{self.address} would not close")

        good, bad1, bad2 = FakeRunner("good"), BadClose("bad1"), BadClose("bad2")
        pool = FakeRunnerPool([good, bad1, bad2])
        await pool.runners(FakeCall())
        with pytest.raises(OSError, match="bad1"):
            await pool.aclose()
        assert [good.closed, bad1.closed, bad2.closed] == [True, True, True]


class TestBufferedResponse:
    def test_old_name_warns_and_is_the_same_class(self) -> None:
        """testing.RecordingResponseWriter, a second name, is deprecated for BufferedResponse."""
        import runnerpool.testing

        with pytest.warns(DeprecationWarning, match="use runnerpool.BufferedResponse"):
            old = runnerpool.testing.RecordingResponseWriter
        assert old is BufferedResponse
        assert "RecordingResponseWriter" not in runnerpool.testing.__all__

    async def test_max_size(self) -> None:
        """A body over max_size is refused and nothing more is kept."""
        writer = BufferedResponse(max_size=4)
        await writer.write(b"abcd")
        with pytest.raises(ResponseTooLargeError, match="function response body too large"):
            await writer.write(b"e")
        assert bytes(writer.body) == b"abcd"
