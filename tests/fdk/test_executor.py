"""The FDK executor against real FDK processes: reuse, scaling, failures, memory, eviction."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from runnerpool import CallTimeoutError, FunctionFailedError, ResponseTooLargeError
from runnerpool.fdk import (
    BundleError,
    Bundles,
    ContainerExitError,
    EnvironmentFailedError,
    FdkExecutor,
    InitFailedError,
    InitTimeoutError,
    InvalidResponseError,
    OutOfMemoryError,
    ResponseReceiveError,
)
from runnerpool.runner import Capacity, RunnerService
from tests.lb.conftest import Metrics

from .conftest import alive, model, run, until


async def whoami(executor: FdkExecutor, **fields: object) -> dict[str, object]:
    writer, _ = await run(executor, model("whoami", **fields))
    assert writer.status == 200
    return dict(json.loads(writer.body))


async def pid_of_running(executor: FdkExecutor, count: int = 1) -> list[int]:
    """Wait until ``count`` processes run, and return their pids."""
    await until(lambda: len(executor.pool.processes) >= count, 10)
    return [process.pid for process in executor.pool.processes]


class TestCalls:
    async def test_echo_round_trip(self, executor: FdkExecutor) -> None:
        """The body and content type come back, with the FDK's headers; output is captured."""
        call = model("echo", headers={"Content-Type": ["text/x-demo"]})
        writer, log = await run(executor, call, b"hello")
        assert (writer.status, writer.body) == (200, b"hello")
        assert writer.header("content-type") == "text/x-demo"
        assert writer.header("x-echo-call-id") == call.id
        assert (writer.header("fn-fdk-version") or "").startswith("fdk-python/")
        assert b"echo got 5 bytes" in log.data

    async def test_environment_and_headers(self, executor: FdkExecutor) -> None:
        """The process sees Fn's FN_* variables, the call's headers and Fn's own.

        Fn-Call-Id and Fn-Deadline are added; hop-by-hop headers are not passed on.
        """
        call = model(
            "whoami",
            app_id="app7",
            fn_id="fn7",
            memory=96,
            config={"GREETING": "hi"},
            headers={"X-Custom": ["a"], "Connection": ["close"]},
        )
        writer, _ = await run(executor, call)
        seen = json.loads(writer.body)
        env = seen["env"]
        assert env["FN_APP_ID"] == "app7"
        assert env["FN_FN_ID"] == "fn7"
        assert env["FN_MEMORY"] == "96"
        assert env["FN_TYPE"] == "sync"
        assert env["FN_FORMAT"] == "http-stream"
        assert re.fullmatch(r"unix:/.+/iofs[^/]+/lsnr\.sock", env["FN_LISTENER"])
        # Under the executor's own directory, and short enough for sockaddr_un.
        assert env["FN_LISTENER"].startswith(f"unix:{executor.iofs_root}/")
        assert len(env["FN_LISTENER"]) - len("unix:") <= 107
        headers = seen["headers"]
        assert headers["x-custom"] == "a"
        assert headers["fn-call-id"] == call.id
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", headers["fn-deadline"])
        assert "connection" not in headers or headers["connection"] != "close"

    async def test_func_yaml_entrypoint(self, executor: FdkExecutor) -> None:
        """func.yaml's entrypoint names the module and the handler."""
        writer, _ = await run(executor, model("yaml"))
        assert writer.body == b"greetings"

    async def test_unknown_image(self, executor: FdkExecutor) -> None:
        """An image with no bundle is refused at admission with a clear error, not a NACK."""
        with pytest.raises(BundleError, match="no function bundle"):
            executor.admit(model("nope"), None, {}, Capacity())


class TestHotProcesses:
    async def test_second_call_reuses_the_process(self, executor: FdkExecutor) -> None:
        """Calls of one slot key, one after the other, run in one process."""
        first = await whoami(executor)
        second = await whoami(executor)
        assert first["pid"] == second["pid"]
        assert len(executor.pool.processes) == 1

    async def test_concurrent_calls_start_more_processes(self, executor: FdkExecutor) -> None:
        """Three overlapping calls run in three processes, never two in one."""
        calls = [run(executor, model("slow"), b"0.5") for _ in range(3)]
        running = asyncio.gather(*calls)
        pids = await pid_of_running(executor, 3)
        await running
        assert len(set(pids)) == 3
        await until(lambda: executor.pool.idle_count() == 3)

    async def test_idle_processes_are_taken_last_in_first_out(self, executor: FdkExecutor) -> None:
        """The most recently used idle process serves the next call."""
        # Calls long enough that neither process frees up before the other one is ready.
        await asyncio.gather(
            run(executor, model("pidnap"), b"0.5"), run(executor, model("pidnap"), b"0.5")
        )
        await until(lambda: executor.pool.idle_count() == 2)

        async def pid() -> int:
            writer, _ = await run(executor, model("pidnap"), b"0")
            return int(writer.body)

        newest = await pid()
        # FIFO would now hand out the other process; LIFO the same one again.
        assert await pid() == newest
        assert await pid() == newest

    async def test_a_process_freed_while_one_starts_serves_the_waiting_call(
        self, executor: FdkExecutor
    ) -> None:
        """A call starting a process takes one of its key that frees up first, as in Fn.

        The process it started goes idle when ready, holding its memory.
        """
        capacity = Capacity(memory_mb=512)

        async def call(seconds: bytes) -> int:
            writer, _ = await run(executor, model("slowstart"), seconds, capacity=capacity)
            return int(writer.body)

        first = await call(b"0")  # a cold start: 1 s
        busy = asyncio.ensure_future(call(b"0.5"))  # the warm process, busy for 0.5 s
        await until(lambda: executor.pool.idle_count() == 0)
        started = time.monotonic()
        assert await call(b"0") == first  # served by the freed process, not its own
        assert time.monotonic() - started < 0.9
        assert await busy == first
        await until(lambda: executor.pool.idle_count() == 2, 10)
        assert capacity.used_mb == 256

    async def test_a_call_cancelled_while_its_process_starts(self, executor: FdkExecutor) -> None:
        """A call given up during its cold start leaves no process and no memory held."""
        capacity = Capacity(memory_mb=512)
        call = asyncio.ensure_future(run(executor, model("slowstart"), capacity=capacity))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(lambda: capacity.used_mb == 0)
        assert executor.pool.processes == []

    async def test_other_configuration_other_process(self, executor: FdkExecutor) -> None:
        """A call whose slot key differs (another config) never shares a process."""
        plain = await whoami(executor)
        configured = await whoami(executor, config={"K": "v"})
        assert plain["pid"] != configured["pid"]

    async def test_idle_timeout_kills_the_process(self, executor: FdkExecutor) -> None:
        """An idle process is stopped after the function's idle_timeout, and its memory freed."""
        capacity = Capacity(memory_mb=1024)
        writer, _ = await run(executor, model("whoami", idle_timeout=1), capacity=capacity)
        pid = json.loads(writer.body)["pid"]
        assert capacity.used_mb == 128
        await until(lambda: not alive(pid))
        assert executor.pool.processes == []
        assert capacity.used_mb == 0


class TestFailures:
    async def test_timeout_kills_the_process(self, executor: FdkExecutor) -> None:
        """A call past its timeout is 504, and its process is killed."""
        call = asyncio.ensure_future(run(executor, model("slow", timeout=1), b"5"))
        [pid] = await pid_of_running(executor)
        with pytest.raises(CallTimeoutError):
            await call
        await until(lambda: not alive(pid))
        assert executor.pool.processes == []

    async def test_function_raising_keeps_the_process(self, executor: FdkExecutor) -> None:
        """A handler exception is 502 carrying the error, and the process serves on."""
        with pytest.raises(FunctionFailedError, match="this function always fails"):
            await run(executor, model("fail"))
        [pid] = [process.pid for process in executor.pool.processes]
        with pytest.raises(FunctionFailedError):
            await run(executor, model("fail"))
        assert [process.pid for process in executor.pool.processes] == [pid]
        assert alive(pid)

    async def test_function_exiting_is_replaced(self, executor: FdkExecutor) -> None:
        """A process exiting mid-call is 502 with its exit code; the next call gets a new one."""
        with pytest.raises(FunctionFailedError):
            await run(executor, model("fail"))
        [pid] = [process.pid for process in executor.pool.processes]
        with pytest.raises(ContainerExitError, match="container exit code 3"):
            await run(executor, model("fail"), b"exit")
        assert not alive(pid)
        with pytest.raises(FunctionFailedError):
            await run(executor, model("fail"))
        assert [process.pid for process in executor.pool.processes] != [pid]

    async def test_broken_func_py(self, executor: FdkExecutor) -> None:
        """A func.py that does not compile gives 502 with the error, on every call."""
        for _ in range(2):
            with pytest.raises(FunctionFailedError, match=r"expected ':'|invalid syntax"):
                await run(executor, model("broken"))

    async def test_init_timeout(self, make_executor: Callable[..., FdkExecutor]) -> None:
        """A process not listening within the init timeout is 504, killed, its memory freed."""
        executor = make_executor(init_timeout=0.5)
        capacity = Capacity(memory_mb=256)
        try:
            with pytest.raises(InitTimeoutError) as info:
                await run(executor, model("sluggish"), capacity=capacity)
            assert info.value.status_code == 504
            assert executor.pool.processes == []
            assert capacity.used_mb == 0
        finally:
            await executor.aclose()

    async def test_init_failure(self, executor: FdkExecutor) -> None:
        """A process exiting before it listens is 502 (Fn's init failure)."""
        with pytest.raises(InitFailedError) as info:
            await run(executor, model("dies"))
        assert info.value.status_code == 502
        assert executor.pool.processes == []

    async def test_invalid_status_kills_the_process(self, executor: FdkExecutor) -> None:
        """A status other than 200, 502 or 504 is Fn's 502 "invalid function response"."""
        with pytest.raises(InvalidResponseError, match="invalid function response"):
            await run(executor, model("teapot"))
        assert executor.pool.processes == []

    async def test_response_that_is_not_http(self, executor: FdkExecutor) -> None:
        """Bytes that are not an HTTP response are a 502; the process is stopped.

        The executor serves on.
        """
        with pytest.raises(ResponseReceiveError):
            await run(executor, model("garbage"))
        assert executor.pool.processes == []
        writer, _ = await run(executor, model("echo"), b"still here")
        assert writer.body == b"still here"

    async def test_a_very_long_output_line(self, executor: FdkExecutor) -> None:
        """A 3 MB line reaches the call's log up to Fn's 1 MiB log limit, then Fn's marker."""
        writer, log = await run(executor, model("chatty"))
        assert writer.body == b"said a lot"
        marker = b"\n-----max log size 1048576 bytes exceeded, truncating log-----\n"
        await until(lambda: log.data.endswith(marker))
        assert log.data == b"y" * 1024 * 1024 + marker

    async def test_every_line_before_the_answer_is_the_calls(self, executor: FdkExecutor) -> None:
        """All a function writes before it answers is in its call's log, none in the next."""
        first = model("verbose")
        _, first_log = await run(executor, first, b"400")
        second = model("verbose")
        _, second_log = await run(executor, second, b"2")
        assert first_log.data.count(f"{first.id} line ".encode()) == 400
        assert second_log.data.count(f"{second.id} line ".encode()) == 2
        assert first.id.encode() not in second_log.data

    async def test_response_too_large(self, make_executor: Callable[..., FdkExecutor]) -> None:
        """A response over the size limit is 502; the process, mid-answer, is killed."""
        executor = make_executor(max_response_size=1000)
        try:
            writer, _ = await run(executor, model("big"), b"1000")
            assert len(writer.body) == 1000
            with pytest.raises(ResponseTooLargeError):
                await run(executor, model("big"), b"5000")
            assert executor.pool.processes == []
        finally:
            await executor.aclose()


class TestMemory:
    async def test_out_of_memory(self, executor: FdkExecutor) -> None:
        """Going over the function's memory is Fn's out-of-memory 502; within it works."""
        capacity = Capacity(memory_mb=512)
        with pytest.raises(OutOfMemoryError, match="container out of memory"):
            await run(executor, model("hungry", memory=64), b"200", capacity=capacity)
        assert capacity.used_mb == 0
        writer, _ = await run(executor, model("hungry", memory=64), b"20", capacity=capacity)
        assert writer.body == b"held 20 MB"

    @pytest.mark.parametrize("image", ["hungry-async", "hungry-import"])
    async def test_out_of_memory_in_a_coroutine_or_at_import(
        self, executor: FdkExecutor, image: str
    ) -> None:
        """Running out of memory in an async handler, or importing func.py, is the same 502."""
        with pytest.raises(OutOfMemoryError):
            await run(executor, model(image, memory=64))
        assert executor.pool.processes == []

    async def test_processes_hold_memory_and_calls_are_refused(self, executor: FdkExecutor) -> None:
        """A busy process holds its memory: calls that do not fit are refused (the NACK).

        A call of the same key fits again once the process is idle.
        """
        capacity = Capacity(memory_mb=128)
        running = asyncio.ensure_future(run(executor, model("slow"), b"0.5", capacity=capacity))
        await pid_of_running(executor)
        assert executor.admit(model("echo"), None, {}, capacity) is None
        assert executor.admit(model("slow"), None, {}, capacity) is None
        await running
        assert capacity.used_mb == 128
        writer, _ = await run(executor, model("slow"), b"0", capacity=capacity)
        assert writer.body == b"slept 0s"

    async def test_eviction_makes_room(self, executor: FdkExecutor) -> None:
        """An idle process of another function is evicted for a call that would not fit."""
        capacity = Capacity(memory_mb=128)
        await run(executor, model("echo"), b"x", capacity=capacity)
        [echo] = [process.pid for process in executor.pool.processes]
        seen = await whoami_with(executor, capacity)
        assert seen != echo
        await until(lambda: not alive(echo))
        assert [process.pid for process in executor.pool.processes] == [seen]
        assert capacity.used_mb == 128


async def whoami_with(executor: FdkExecutor, capacity: Capacity) -> int:
    writer, _ = await run(executor, model("whoami"), capacity=capacity)
    return int(json.loads(writer.body)["pid"])


class TestLifecycle:
    async def test_close_leaves_nothing(self, make_executor: Callable[..., FdkExecutor]) -> None:
        """Closing stops idle and busy processes and removes every socket directory."""
        executor = make_executor()
        idle = await whoami(executor)
        busy = asyncio.ensure_future(run(executor, model("slow"), b"10"))
        pids = await pid_of_running(executor, 2)
        root = executor.iofs_root
        assert len(list(root.iterdir())) == 2
        await executor.aclose()
        assert idle["pid"] in pids
        assert not any(alive(pid) for pid in pids)
        assert not root.exists()
        # The call in flight learns its process is gone (the runner drains before this).
        with pytest.raises(ContainerExitError):
            await busy

    async def test_status_report(self, executor: FdkExecutor) -> None:
        """The report counts processes, live and started, and shows the environment ready."""
        await whoami(executor)
        await whoami(executor)
        report = executor.report()
        assert report["processes"] == "1"
        assert report["idle_processes"] == "1"
        assert report["process_starts"] == "1"
        await run(executor, model("whoami", memory=64), b"")
        assert executor.report()["process_starts"] == "2"
        assert [v for k, v in report.items() if k.startswith("environment ")] == ["ready"]

    async def test_prepare_ahead(self, executor: FdkExecutor) -> None:
        """Preparing ahead readies the environment of every bundle before any call."""
        await executor.prepare_ahead()
        bundles = executor.bundles
        assert all(
            executor.environments.python(bundles.resolve(image)) is not None
            for image in bundles.images()
        )

    async def test_logs_stream(self, executor: FdkExecutor) -> None:
        """A call's output reaches StreamLogs under its process and request id."""
        call = model("echo")
        stream = executor.stream({})
        await run(executor, call, b"abc")
        async with asyncio.timeout(5):
            batch = await anext(stream)
        [container] = batch
        assert container.fn_id == "echo"
        assert container.container_id == f"fdk-{executor.pool.processes[0].pid}"
        [request] = container.requests
        assert request.request_id == call.id
        assert any(b"echo got 3 bytes" in line.data for line in request.lines)


class TestRobustness:
    async def test_idle_process_dying_is_not_given_a_call(self, executor: FdkExecutor) -> None:
        """An idle process killed from outside is passed over: the next call just works."""
        pid = (await whoami(executor))["pid"]
        assert isinstance(pid, int)
        os.kill(pid, signal.SIGKILL)
        await until(lambda: all(process.exited for process in executor.pool.processes))
        again = await whoami(executor)
        assert again["pid"] != pid
        assert len(executor.pool.processes) == 1

    async def test_idle_connection_is_closed(
        self, make_executor: Callable[..., FdkExecutor]
    ) -> None:
        """An idle process's connection closes after connection_idle; calls reconnect."""
        executor = make_executor(connection_idle=0.1)
        try:
            pid = (await whoami(executor))["pid"]
            [process] = executor.pool.processes
            assert process.connected
            await until(lambda: not process.connected)
            assert (await whoami(executor))["pid"] == pid
        finally:
            await executor.aclose()

    async def test_environment_that_cannot_be_built(
        self, make_executor: Callable[..., FdkExecutor], tmp_path: Path
    ) -> None:
        """A requirement the wheelhouse lacks is a 502 naming the problem, shown in status.

        Nothing is downloaded, and no memory stays reserved.
        """
        bundle = tmp_path / "needy"
        bundle.mkdir()
        (bundle / "func.py").write_text("def handler(ctx, data=None):\n    return 'x'\n")
        (bundle / "requirements.txt").write_text("no-such-package-runnerpool==1.0\n")
        executor = make_executor()
        executor.bundles = Bundles(tmp_path)
        capacity = Capacity(memory_mb=256)
        try:
            with pytest.raises(EnvironmentFailedError, match="no-such-package-runnerpool"):
                await run(executor, model("needy"), capacity=capacity)
            assert capacity.used_mb == 0
            states = [v for k, v in executor.report().items() if k.startswith("environment ")]
            assert len(states) == 1
            assert states[0].startswith("failed: ")
            # Counted as a failed build; no process was started for it.
            built = Metrics(generate_latest(executor.environments.metrics.registry).decode())
            assert built("runnerpool_runner_environment_builds_total", result="failed") == 1
            started = Metrics(generate_latest(executor.metrics.registry).decode())
            assert started("runnerpool_runner_cold_starts_total") == 0
        finally:
            await executor.aclose()


async def test_runner_status_shows_the_executor(executor: FdkExecutor) -> None:
    """A runner's status carries the executor's report: processes and environments."""
    service = RunnerService(executor)
    await executor.prepare_ahead()
    await whoami(executor)
    status = await service.status()
    assert status.custom_status["processes"] == "1"
    assert "ready" in [v for k, v in status.custom_status.items() if k.startswith("environment ")]


async def test_socket_path_too_long(
    make_executor: Callable[..., FdkExecutor], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A socket path that would not fit a unix socket address is a clear 502.

    Even when ``lsnr.sock``'s own path would fit: the FDK binds the longer name.
    """
    base = tmp_path_factory.getbasetemp()
    root = base / ("d" * (82 - len(str(base)) - 1))
    root.mkdir()
    assert len(str(root)) == 82  # lsnr.sock fits (105 bytes); phonylsnr.sock does not (110)
    executor = make_executor(iofs_root=root)
    try:
        with pytest.raises(InitFailedError, match="too long for a unix socket"):
            await run(executor, model("whoami"))
        assert list(root.iterdir()) == []
    finally:
        await executor.aclose()


async def test_eviction_takes_the_least_recently_used_process(executor: FdkExecutor) -> None:
    """Eviction stops the process idle the longest, though its function has another idle one.

    That other process stays idle, holds its memory, and serves the next call.
    """
    capacity = Capacity(memory_mb=256)
    # Both start at once; the first ends long before the second (and before the second's
    # process could still be starting, which would make it take the first's process).
    answers = await asyncio.gather(
        run(executor, model("pidnap"), b"0.5", capacity=capacity),
        run(executor, model("pidnap"), b"1.0", capacity=capacity),
    )
    older, newer = (int(writer.body) for writer, _ in answers)
    assert older != newer
    assert capacity.used_mb == 256
    who = await whoami_with(executor, capacity)
    await until(lambda: not alive(older))
    assert alive(newer)
    assert {process.pid for process in executor.pool.processes} == {newer, who}
    assert executor.pool.idle_count() == 2
    assert capacity.used_mb == 256
    writer, _ = await run(executor, model("pidnap"), b"0", capacity=capacity)
    assert int(writer.body) == newer


async def test_a_process_coming_back_after_close_is_stopped(
    make_executor: Callable[..., FdkExecutor],
) -> None:
    """A process a call still held when the executor closed is not made idle again."""
    executor = make_executor()
    await whoami(executor)
    ticket = executor.admit(model("whoami"), None, {}, Capacity())
    assert ticket is not None
    assert executor.pool.idle_count() == 0
    await executor.aclose()
    ticket.release()
    assert executor.pool.idle_count() == 0
    assert executor.pool.processes == []
