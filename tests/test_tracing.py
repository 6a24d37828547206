"""Tracing: one call through a real load balancer and real runners is one trace.

The load balancer's front end is served by uvicorn and the runners by grpclib, all on
127.0.0.1 (port 0) in the test's process, sharing one in-memory exporter. The first runner is
draining, so it NACKs, and the call takes two attempts.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode, set_span_in_context

from runnerpool import (
    BasePlacer,
    Call,
    FunctionFailedError,
    PlacerConfig,
    PlacerTracker,
    RunnerUnavailableError,
    StaticRunnerPool,
    _tracing,
)
from runnerpool._sockets import listening_socket
from runnerpool.lb._agent import LBAgent
from runnerpool.lb._app import create_app
from runnerpool.lb._registry import App, Function, Registry
from runnerpool.runner import (
    Capacity,
    FunctionRequest,
    FunctionResponse,
    InProcessExecutor,
    RunnerServer,
    RunnerService,
)
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, fail, refuse
from runnerpool.tracing import (
    ADMISSION_SPAN,
    ATTEMPT_SPAN,
    EXECUTION_SPAN,
    disable_tracing,
    enable_tracing,
    inject_headers,
)

#: A client's trace, which the load balancer continues.
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


async def traced(request: FunctionRequest) -> FunctionResponse:
    """Answer the ``traceparent`` header the function received."""
    values = [v for k, vs in request.headers.items() if k.lower() == "traceparent" for v in vs]
    return FunctionResponse(",".join(values).encode())


class InOrder(BasePlacer):
    """Tries the pool's runners in their order: the draining one first."""


@dataclass
class Stack:
    """A load balancer in front of a draining runner and a serving one."""

    url: str
    nacking: str
    serving: str


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span kept in memory; off again at the end."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    enable_tracing(provider)
    yield spans
    disable_tracing()
    provider.shutdown()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """Two real runners and a real load balancer, the same composition as ``serve_lb``."""
    runners = []
    for _ in range(2):
        service = RunnerService(InProcessExecutor({"test/traced": traced}))
        server = RunnerServer(service, host="127.0.0.1", port=0, drain_timeout=5)
        await server.start()
        runners.append(server)
    runners[0].service.start_drain()
    app_ = App(id="app1", name="tests")
    registry = Registry(
        [app_], [Function(id="traced", name="traced", app=app_, image="test/traced")]
    )
    pool = StaticRunnerPool([r.address for r in runners])
    agent = LBAgent(InOrder(), pool)
    served = create_app(agent, registry)
    trace = _tracing.active
    config = uvicorn.Config(
        served if trace is None else trace.wrap_asgi(served),
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    front = uvicorn.Server(config)
    sock = listening_socket("127.0.0.1", 0)
    serving = asyncio.create_task(front.serve(sockets=[sock]))
    for _ in range(500):
        if front.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield Stack(
            f"http://127.0.0.1:{sock.getsockname()[1]}", runners[0].address, runners[1].address
        )
    finally:
        front.should_exit = True
        await serving
        await agent.aclose()
        for runner in runners:
            await runner.aclose()


async def finished(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """The exported spans, once there are ``count`` (the LB's ends after its response)."""
    for _ in range(200):
        spans = list(exporter.get_finished_spans())
        if len(spans) >= count:
            return spans
        await asyncio.sleep(0.01)
    return list(exporter.get_finished_spans())


class TestOneTrace:
    async def test_invoke_is_one_trace_across_lb_attempts_and_runner(
        self, exporter: InMemorySpanExporter, stack: Stack
    ) -> None:
        """The call, both attempts (NACK, placed) and the runner's work share the client's trace."""
        async with httpx.AsyncClient(base_url=stack.url) as client:
            response = await client.post(
                "/invoke/traced", content=b"hi", headers={"traceparent": CLIENT_TRACEPARENT}
            )
        assert response.status_code == 200
        spans = await finished(exporter, 6)
        assert {format(s.context.trace_id, "032x") for s in spans} == {CLIENT_TRACE}
        by_name: dict[str, list[ReadableSpan]] = {}
        for span in spans:
            by_name.setdefault(span.name, []).append(span)
        assert sorted(by_name) == sorted(
            ["POST /invoke/{fn_id}", ATTEMPT_SPAN, ADMISSION_SPAN, EXECUTION_SPAN]
        )
        (call,) = by_name["POST /invoke/{fn_id}"]
        assert call.kind is SpanKind.SERVER
        assert call.parent is not None
        assert format(call.parent.span_id, "016x") == CLIENT_SPAN
        assert call.attributes is not None
        assert call.attributes["http.route"] == "/invoke/{fn_id}"
        assert call.attributes["http.response.status_code"] == 200
        assert call.attributes["fn.fn_id"] == "traced"
        assert call.attributes["fn.app_id"] == "app1"
        assert call.attributes["fn.call_id"] == response.headers["fn-call-id"]

        attempts = sorted(by_name[ATTEMPT_SPAN], key=lambda s: s.start_time or 0)
        assert [(a.attributes or {}).get("runnerpool.runner") for a in attempts] == [
            stack.nacking,
            stack.serving,
        ]
        assert [(a.attributes or {}).get("runnerpool.outcome") for a in attempts] == [
            "nack",
            "placed",
        ]
        assert all(
            a.parent is not None and a.parent.span_id == call.context.span_id for a in attempts
        )

        admissions = {
            a.parent.span_id: (a.attributes or {}).get("runnerpool.outcome")
            for a in by_name[ADMISSION_SPAN]
            if a.parent is not None
        }
        assert admissions == {
            attempts[0].context.span_id: "nack",
            attempts[1].context.span_id: "admitted",
        }
        (execution,) = by_name[EXECUTION_SPAN]
        assert execution.parent is not None
        assert execution.parent.span_id == attempts[1].context.span_id
        assert (execution.attributes or {}).get("fn.call_id") == response.headers["fn-call-id"]

        # The function got the trace, with the runner's execution as the parent to continue.
        version, trace_id, parent_id, flags = response.text.split("-")
        assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
        assert parent_id == format(execution.context.span_id, "016x")

    async def test_a_call_without_a_trace_starts_one(
        self, exporter: InMemorySpanExporter, stack: Stack
    ) -> None:
        """Without a client traceparent the call's span is a root; the function gets its trace."""
        async with httpx.AsyncClient(base_url=stack.url) as client:
            response = await client.post("/invoke/traced", content=b"hi")
        assert response.status_code == 200
        spans = await finished(exporter, 6)
        (call,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("POST")]
        assert call.parent is None
        assert len({s.context.trace_id for s in spans}) == 1
        assert response.text.split("-")[1] == format(call.context.trace_id, "032x")


@pytest.fixture
def unsampled() -> Iterator[InMemorySpanExporter]:
    """Tracing on, sampling nothing (ratio 0, as OTEL_TRACES_SAMPLER_ARG=0 sets it)."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    enable_tracing(provider)
    yield spans
    disable_tracing()
    provider.shutdown()


class TestSampling:
    async def test_sampled_out_call_exports_nothing_but_passes_the_context_on(
        self, unsampled: InMemorySpanExporter, stack: Stack
    ) -> None:
        """At ratio 0 no span is recorded, and the function still gets an unsampled traceparent."""
        async with httpx.AsyncClient(base_url=stack.url) as client:
            response = await client.post("/invoke/traced", content=b"hi")
        assert response.status_code == 200
        await asyncio.sleep(0.1)  # the LB's span, had it been recorded, ends after the response
        assert unsampled.get_finished_spans() == ()
        version, trace_id, _, flags = response.text.split("-")
        assert version == "00"
        assert int(flags, 16) & 1 == 0  # not sampled
        assert int(trace_id, 16) != 0


class TestOff:
    async def test_off_records_nothing_and_forwards_the_client_header(self, stack: Stack) -> None:
        """With tracing off the client's traceparent reaches the function as it was sent."""
        assert _tracing.active is None
        async with httpx.AsyncClient(base_url=stack.url) as client:
            response = await client.post(
                "/invoke/traced", content=b"hi", headers={"traceparent": CLIENT_TRACEPARENT}
            )
        assert response.status_code == 200
        assert response.text == CLIENT_TRACEPARENT

    def test_off_imports_no_opentelemetry(self) -> None:
        """The library, its CLI and a placement import nothing of OpenTelemetry while off."""
        code = (
            "import asyncio, sys\n"
            "import runnerpool, runnerpool.cli, runnerpool.fdk, runnerpool.runner\n"
            "from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool\n"
            "pool = FakeRunnerPool([FakeRunner('r1')])\n"
            "asyncio.run(runnerpool.NaivePlacer().place_call(pool, FakeCall()))\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == "[]"


class TestHooks:
    async def test_attempt_outcomes(self, exporter: InMemorySpanExporter) -> None:
        """Unreachable is an error attempt; a committed failure is placed, its span in error."""
        unreachable = FakeRunner("r1", refuse(RunnerUnavailableError("down")))
        failing = FakeRunner("r2", fail(FunctionFailedError()))
        pool = FakeRunnerPool([unreachable, failing])
        with pytest.raises(FunctionFailedError):
            await InOrder().place_call(pool, FakeCall(Call(fn_id="f", app_id="a")))
        attempts = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
        assert [(s.attributes or {})["runnerpool.outcome"] for s in attempts] == [
            "error",
            "placed",
        ]
        assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR]
        assert attempts[1].events[0].name == "exception"

    async def test_placer_of_its_own_traces_through_try_runner(
        self, exporter: InMemorySpanExporter
    ) -> None:
        """PlacerTracker.try_runner, for placers written from scratch, makes attempt spans too."""
        call = FakeCall(Call(fn_id="f"))
        tracker = PlacerTracker(PlacerConfig(), call)
        assert not await tracker.try_runner(FakeRunner("r1", busy()), call)
        assert await tracker.try_runner(FakeRunner("r2"), call)
        tracker.done()
        outcomes = [
            (s.attributes or {})["runnerpool.outcome"] for s in exporter.get_finished_spans()
        ]
        assert outcomes == ["nack", "placed"]
        assert call.model.headers["Traceparent"][0].startswith("00-")

    def test_admission_error_is_recorded(self, exporter: InMemorySpanExporter) -> None:
        """An executor refusing a call with an error ends the admission span in error."""
        hooks = _tracing.active
        assert hooks is not None

        class Refusing(InProcessExecutor):
            def admit(self, *args: object) -> None:
                raise FunctionFailedError("no")

        with pytest.raises(FunctionFailedError):
            hooks.admit(Refusing({}), Call(), None, {}, Capacity(), False)
        (span,) = exporter.get_finished_spans()
        assert (span.attributes or {})["runnerpool.outcome"] == "error"
        assert span.status.status_code is StatusCode.ERROR

    def test_headers_are_read_and_written_in_any_spelling(
        self, exporter: InMemorySpanExporter
    ) -> None:
        """A lower-case traceparent is continued; writing replaces every spelling with one."""
        hooks = _tracing.active
        assert hooks is not None
        model = Call(headers={"traceparent": [CLIENT_TRACEPARENT], "Accept": ["*/*"]})
        assert hooks.admit(InProcessExecutor({}), model, None, {}, Capacity(), True) is None
        (span,) = exporter.get_finished_spans()
        assert format(span.context.trace_id, "032x") == CLIENT_TRACE
        assert (span.attributes or {})["runnerpool.outcome"] == "nack"
        inject_headers(model.headers, set_span_in_context(NonRecordingSpan(span.context)))
        assert sorted(model.headers) == ["Accept", "Traceparent"]
        assert model.headers["Traceparent"] == [
            f"00-{CLIENT_TRACE}-{format(span.context.span_id, '016x')}-01"
        ]
