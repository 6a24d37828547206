"""The LB agent in process: the gate, the accounting of spec 3.3, detached calls."""

from __future__ import annotations

import asyncio

import pytest

from runnerpool import (
    BufferedCall,
    BufferedResponse,
    Call,
    FunctionFailedError,
    NaivePlacer,
    PlacerConfig,
    RequestTooLargeError,
    RunnerCall,
    ServerBusyError,
    metrics,
)
from runnerpool._call import RunnerTimings
from runnerpool.lb._agent import DetachedResponse, LBAgent, ReservationExpiredError
from runnerpool.metrics import LBAgentViews
from runnerpool.testing import FakeRunner, FakeRunnerPool, Outcome, busy, fail, hang, succeed

BUCKETS = (1, 10, 100, 1000, 10000)


def views() -> LBAgentViews:
    return metrics.register_lb_agent_views([], BUCKETS)


def sums(v: LBAgentViews) -> dict[str, int]:
    """Every non-zero sum of the agent's views."""
    result = {}
    for name in ("calls", "queued", "running", "completed", "canceled", "timeouts", "errors"):
        if getattr(v, name).value():
            result[name] = getattr(v, name).value()
    if v.server_busy.value():
        result["server_busy"] = v.server_busy.value()
    return result


def latency_count(v: LBAgentViews, status: str) -> int:
    return v.call_latency.snapshot((status,))[1]


def body(data: bytes = b"in") -> object:
    async def read() -> bytes:
        return data

    return read


def acknowledge_then_run(seconds: float) -> Outcome:
    """What a runner does with a detached call: 202 at the start, the function after."""

    async def action(runner: FakeRunner, call: RunnerCall) -> None:
        call.response_writer.write_header(202)
        await asyncio.sleep(seconds)

    return Outcome("detached", action)


def new_call(**model: object) -> BufferedCall:
    """A call of f1; a detached one writes to a DetachedResponse, as the HTTP layer builds it."""
    writer = DetachedResponse() if model.get("type") == "detached" else BufferedResponse()
    return BufferedCall(Call(id="c1", fn_id="f1", **model), response_writer=writer)  # type: ignore[arg-type]


class TestSync:
    async def test_success(self) -> None:
        """A call that succeeds: calls and completed, queued and running back to 0."""
        v = views()
        runner = FakeRunner("r", then=succeed(b"out", execution_time=0.001))
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        call = new_call()
        await agent.submit(call, body(b"in"))  # type: ignore[arg-type]
        assert call.body == b"in"
        assert runner.attempts[0].body == b"in"
        assert bytes(call.response_writer.body) == b"out"
        assert sums(v) == {"calls": 1, "completed": 1}
        assert latency_count(v, "completed") == 1
        assert (call.model.status, call.model.error) == ("success", "")
        assert call.model.started_at is not None
        assert call.model.completed_at is not None

    async def test_runner_timings_become_the_agents_metrics(self) -> None:
        """The runner's reported timings are recorded, in ms, by the agent; the address is kept."""
        v = views()

        async def timed(runner: FakeRunner, call: RunnerCall) -> None:
            call.runner_timings = RunnerTimings(scheduler_duration=3_900_000, execution_duration=0)
            call.response_writer.write_header(200)

        runner = FakeRunner("10.0.0.9:9190", then=Outcome("timed", timed))
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        call = new_call()
        await agent.submit(call, body())  # type: ignore[arg-type]
        assert v.runner_sched_latency.snapshot()[1:] == (1, 3.0)
        assert v.runner_exec_latency.snapshot()[1] == 0  # not given: not recorded
        assert call.runner_address == "10.0.0.9:9190"

    async def test_a_refusing_runner_leaves_no_address(self) -> None:
        """A runner that NACKs is not the call's runner: the one that took it is."""
        runners = [FakeRunner("a", then=busy()), FakeRunner("b")]
        agent = LBAgent(NaivePlacer(), FakeRunnerPool(runners))
        call = new_call()
        await agent.submit(call, body())  # type: ignore[arg-type]
        assert [len(r.attempts) for r in runners] == [1, 1]
        assert call.runner_address == "b"

    async def test_closed_gate(self) -> None:
        """After close_gate, calls get 503 without reaching any runner (server_busy)."""
        v = views()
        runner = FakeRunner("r")
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        agent.close_gate()
        with pytest.raises(ServerBusyError):
            await agent.submit(new_call(), body())  # type: ignore[arg-type]
        assert runner.attempts == []
        assert sums(v) == {"calls": 1, "server_busy": 1}

    async def test_body_error(self) -> None:
        """A body that cannot be read: errors, queued back to 0, no runner tried."""
        v = views()
        runner = FakeRunner("r")
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))

        async def too_large() -> bytes:
            raise RequestTooLargeError

        with pytest.raises(RequestTooLargeError):
            await agent.submit(new_call(), too_large)
        assert runner.attempts == []
        assert sums(v) == {"calls": 1, "errors": 1}

    @pytest.mark.parametrize(
        ("outcome", "error", "status"),
        [
            (fail(FunctionFailedError()), FunctionFailedError, "errors"),
            (busy(), ServerBusyError, "server_busy"),
        ],
    )
    async def test_failures(self, outcome: object, error: type, status: str) -> None:
        """A failed call counts under its status, and its model records the error."""
        v = views()
        runner = FakeRunner("r", then=outcome)  # type: ignore[arg-type]
        agent = LBAgent(NaivePlacer(PlacerConfig(placer_timeout=0.05)), FakeRunnerPool([runner]))
        call = new_call()
        with pytest.raises(error):
            await agent.submit(call, body())  # type: ignore[arg-type]
        assert sums(v) == {"calls": 1, status: 1}
        assert latency_count(v, status) == 1
        assert call.model.status == "error"
        assert call.model.error

    async def test_cancel(self) -> None:
        """A client that goes away mid-call: canceled, and the cancellation propagates."""
        v = views()
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([FakeRunner("r", then=hang())]))
        task = asyncio.create_task(agent.submit(new_call(), body()))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        assert v.running.value() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sums(v) == {"calls": 1, "canceled": 1}

    async def test_latency_excludes_user_time(self) -> None:
        """lb_call_latency leaves out the time the function itself ran."""
        v = views()
        runner = FakeRunner("r", then=succeed(delay=0.2, execution_time=0.2))
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        await agent.submit(new_call(), body())  # type: ignore[arg-type]
        _, count, total = v.call_latency.snapshot(("completed",))
        assert count == 1
        assert total < 100


class TestDetached:
    async def test_the_http_layer_builds_the_detached_writer(self) -> None:
        """submit_detached refuses a call whose writer would keep the function's output."""
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([FakeRunner("r")]))
        call = BufferedCall(Call(id="c1", fn_id="f1", type="detached"))
        with pytest.raises(TypeError, match="DetachedResponse"):
            await agent.submit_detached(call, body())  # type: ignore[arg-type]
        assert agent.in_flight == 0

    async def test_acknowledged_then_completes(self) -> None:
        """A detached call returns at the runner's 202 and completes in the background."""
        v = views()
        runner = FakeRunner("r", then=acknowledge_then_run(0.2))
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        await agent.submit_detached(new_call(type="detached", timeout=30), body())  # type: ignore[arg-type]
        assert v.running.value() == 1
        assert v.completed.value() == 0
        await agent.aclose()  # waits for the background call
        assert sums(v) == {"calls": 1, "completed": 1}

    async def test_error_before_acknowledgement(self) -> None:
        """A detached call that fails before any acknowledgement returns that error."""
        runner = FakeRunner("r", then=fail(FunctionFailedError()))
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        with pytest.raises(FunctionFailedError):
            await agent.submit_detached(new_call(type="detached"), body())  # type: ignore[arg-type]

    async def test_reservation_expires(self) -> None:
        """A detached call outliving its reservation fails with Fn's 500 and counts a timeout."""
        v = views()
        placer = NaivePlacer(PlacerConfig(detached_placer_timeout=0.05))
        agent = LBAgent(placer, FakeRunnerPool([FakeRunner("r", then=hang())]), detached_headroom=0)
        with pytest.raises(ReservationExpiredError) as info:
            await agent.submit_detached(new_call(type="detached", timeout=0), body())  # type: ignore[arg-type]
        assert info.value.status_code == 500
        assert sums(v) == {"calls": 1, "timeouts": 1}

    async def test_client_leaving_does_not_stop_it(self) -> None:
        """Cancelling the wait for the acknowledgement leaves the placement running."""
        v = views()
        runner = FakeRunner("r", busy(), then=acknowledge_then_run(0.1))
        agent = LBAgent(NaivePlacer(), FakeRunnerPool([runner]))
        waiting = asyncio.create_task(
            agent.submit_detached(new_call(type="detached", timeout=30), body())  # type: ignore[arg-type]
        )
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await agent.aclose()
        assert v.completed.value() == 1
        assert runner.attempts[-1].outcome == "detached"
