"""One way to close: aclose() and async with on the fakes, the LB agent and the shared base."""

from __future__ import annotations

import pytest

from runnerpool import AsyncResource, BufferedCall, Call, NaivePlacer, RunnerClosedError
from runnerpool.lb._agent import LBAgent
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool


class Counted(AsyncResource):
    """A resource that counts its closes."""

    def __init__(self) -> None:
        self.closes = 0

    async def aclose(self) -> None:
        """Count one close."""
        self.closes += 1


class OldPool:
    """A user's pool written against the previous release: shutdown() and no aclose()."""

    def __init__(self) -> None:
        self.shut_down = False

    async def runners(self, call: object) -> list[FakeRunner]:
        """No runners."""
        return []

    async def shutdown(self) -> None:
        """Remember the shutdown."""
        self.shut_down = True


class TestAsyncResource:
    async def test_async_with_returns_the_resource_and_closes_it(self) -> None:
        """Entering gives the resource itself; leaving calls aclose() once."""
        async with Counted() as resource:
            assert resource.closes == 0
        assert resource.closes == 1

    async def test_closes_when_the_block_raises(self) -> None:
        """An error in the block still closes the resource, and propagates."""
        resource = Counted()
        with pytest.raises(LookupError):
            async with resource:
                raise LookupError("boom")
        assert resource.closes == 1


class TestFakeRunner:
    async def test_async_with_closes(self) -> None:
        """A FakeRunner closes under async with, then refuses; closing again is harmless."""
        async with FakeRunner("r") as runner:
            await runner.try_exec(FakeCall())
        assert runner.closed
        await runner.aclose()
        with pytest.raises(RunnerClosedError):
            await runner.try_exec(FakeCall())

    async def test_close_is_a_deprecated_alias(self) -> None:
        """close() still closes, with a DeprecationWarning naming aclose()."""
        runner = FakeRunner("r")
        with pytest.deprecated_call(match=r"FakeRunner\.close\(\) is deprecated; use aclose\(\)"):
            await runner.close()
        assert runner.closed


class TestFakeRunnerPool:
    async def test_async_with_closes_the_runners(self) -> None:
        """A FakeRunnerPool closes under async with, and closes the runners it handed out."""
        runner = FakeRunner("r")
        async with FakeRunnerPool([runner]) as pool:
            await pool.runners(FakeCall())
        assert pool.closed
        assert runner.closed
        await pool.aclose()
        assert pool.closed

    async def test_shutdown_and_shut_down_are_deprecated_aliases(self) -> None:
        """shutdown() and shut_down still work, each with a DeprecationWarning."""
        pool = FakeRunnerPool()
        with pytest.deprecated_call(match=r"shutdown\(\) is deprecated"):
            await pool.shutdown()
        with pytest.deprecated_call(match=r"shut_down is deprecated; use closed"):
            assert pool.shut_down

    async def test_a_runner_with_only_close_is_still_closed(self) -> None:
        """A user's runner with the old close() and no aclose() is closed, with a warning."""

        class OldRunner:
            address = "old"
            closed = False

            async def close(self) -> None:
                self.closed = True

        old = OldRunner()
        pool = FakeRunnerPool([old])  # type: ignore[list-item]
        await pool.runners(FakeCall())
        with pytest.deprecated_call(match=r"OldRunner has close\(\) but no aclose\(\)"):
            await pool.aclose()
        assert old.closed


class TestLBAgent:
    async def test_async_with_closes_its_pool(self) -> None:
        """The agent closes its gate and its pool under async with; closing again is harmless."""
        runner = FakeRunner("r")
        pool = FakeRunnerPool([runner])
        async with LBAgent(NaivePlacer(), pool) as agent:
            call = BufferedCall(Call(id="c1", fn_id="f"), body=b"in")

            async def read() -> bytes:
                return b"in"

            await agent.submit(call, read)
        assert agent.closing
        assert pool.closed
        assert runner.closed
        await agent.aclose()

    async def test_a_pool_with_only_shutdown_is_still_shut(self) -> None:
        """A user's pool with the old shutdown() and no aclose() is shut, with a warning."""
        pool = OldPool()
        agent = LBAgent(NaivePlacer(), pool)  # type: ignore[arg-type]
        with pytest.deprecated_call(match=r"OldPool has shutdown\(\) but no aclose\(\)"):
            await agent.aclose()
        assert pool.shut_down


ONE_FUNCTION = """
[[apps]]
name = "a"

[[functions]]
id = "f"
name = "f"
app = "a"
image = "echo"
"""


class TestInternalResources:
    async def test_lb_and_runner_helpers_close_under_async_with_and_twice(self) -> None:
        """The file source, the function log, the syslog shipper and the hot pool close so too."""
        from runnerpool._syslog import SyslogShipper
        from runnerpool.fdk._function_log import FunctionLog
        from runnerpool.fdk._pool import HotPool
        from runnerpool.lb._registry import Registry
        from runnerpool.lb._sources import FileSource

        resources: list[AsyncResource] = [
            FileSource(Registry.from_toml(ONE_FUNCTION, "fns.toml")),
            FunctionLog(),
            SyslogShipper(),
            HotPool(connection_idle=5.0),
        ]
        for resource in resources:
            async with resource as entered:
                assert entered is resource
            await resource.aclose()  # closing again does nothing
