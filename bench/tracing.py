"""Tracing's cost on the load balancer's own work, in process: off, sampled out, and 100%.

One call is the load balancer's whole Python path but the network: an ASGI
``POST /invoke/echo`` with a 5-byte body through the front end as ``serve_lb`` composes it
(``TraceRequests`` when tracing is on, the access log, the Starlette app, ``LBAgent``, the
placement loop every placer shares) to an in-memory runner that encodes the call's model as
``GrpcRunner`` does (the JSON a runner gets, ``traceparent`` included) and answers the body.
uvicorn's HTTP parsing and the gRPC leg are left out, so the CPU per call here is a fraction of
the LB process's (``bench.lb``): tracing's share of it is an upper bound of its share of the
real LB's.

*first accepts*: the runner takes the call. *1 NACK*: a first runner refuses it (503) and the
second takes it: two attempts. Tracing at 100% exports through a ``BatchSpanProcessor`` to an
exporter that encodes the spans as OTLP protobuf and drops them (no network); sampled out is
the same with ``ParentBased(TraceIdRatioBased(0))``, what ``OTEL_TRACES_SAMPLER_ARG=0`` gives.
CPU per call is ``time.process_time()`` (every thread of the process, the exporter's included;
the spans are flushed within the timed block) over the calls of a block. Cases are
interleaved, in alternating order, after an untimed round; the least CPU per call of the
repeats is kept, as the figure least disturbed by other work on a shared machine.

Run: ``python -m bench.tracing`` (needs the ``otel`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runnerpool import BasePlacer, RunnerBusyError, RunnerStatus, _tracing
from runnerpool.lb._access_log import AccessLog
from runnerpool.lb._agent import LBAgent
from runnerpool.lb._app import create_app
from runnerpool.lb._registry import App, Function, Registry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from starlette.types import ASGIApp, Message

    from runnerpool import RunnerCall
    from runnerpool.tracing import TracingHooks

BODY = b"hello"
#: The tracing settings compared: the sampler ratio, or ``None`` for off.
CASES: tuple[tuple[str, float | None], ...] = (
    ("off", None),
    ("sampled out (ratio 0)", 0.0),
    ("100%", 1.0),
)
SCENARIOS = (("first accepts", 0), ("1 NACK", 1))


class _InOrder(BasePlacer):
    """Tries the runners in the pool's order (the refusing one first)."""


class _Refusing:
    """Refuses every call, as busy (the 503 NACK)."""

    address = "10.0.0.1:9190"

    async def try_exec(self, call: RunnerCall) -> None:
        raise RunnerBusyError

    async def status(self) -> RunnerStatus:
        return RunnerStatus()

    async def aclose(self) -> None:
        return None


class _Runner:
    """Echoes the body."""

    address = "10.0.0.2:9190"

    async def try_exec(self, call: RunnerCall) -> None:
        call.model.to_json()  # what GrpcRunner sends in the TryCall
        body = b"".join([chunk async for chunk in call.request_body()])
        call.response_writer.write_header(200)
        await call.response_writer.write(body)

    async def status(self) -> RunnerStatus:
        return RunnerStatus()

    async def aclose(self) -> None:
        return None


class _Pool:
    """The same runners for every pass."""

    __slots__ = ("_runners",)

    def __init__(self, runners: Sequence[_Runner | _Refusing]) -> None:
        self._runners = runners

    async def runners(self, call: object) -> Sequence[_Runner | _Refusing]:
        return self._runners

    async def aclose(self) -> None:
        return None


SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/invoke/echo",
    "raw_path": b"/invoke/echo",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"5"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8080),
}


async def call_once(app: ASGIApp) -> int:
    """Send one call through the ASGI application; return the status it answered."""
    sent = False
    never = asyncio.get_running_loop().create_future()
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await never  # the client stays: the app's watcher is cancelled when the call ends
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(SCOPE), receive, send)
    return status


def tracing_hooks(ratio: float) -> tuple[TracingHooks, TracerProvider]:
    """Hooks sampling ``ratio`` of the calls, batching spans to an OTLP-encoding exporter."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from runnerpool.tracing import TracingHooks as Hooks

    class Encoding(SpanExporter):
        """Does an OTLP exporter's CPU work (protobuf encoding), without the network."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Encoding(), schedule_delay_millis=50))
    return Hooks(provider.get_tracer("bench")), provider


async def block(
    app: ASGIApp, hooks: TracingHooks | None, provider: TracerProvider | None, calls: int
) -> float:
    """Make ``calls`` calls with the given tracing; return the CPU per call, in µs."""
    _tracing.active = hooks
    gc.collect()
    start = time.process_time()
    for _ in range(calls):
        if await call_once(app) != 200:
            raise RuntimeError("a call failed")
    if provider is not None:
        provider.force_flush()  # the spans' export is part of their cost
    return (time.process_time() - start) / calls * 1e6


@dataclass(frozen=True)
class Row:
    """One result: CPU per call of a case, and of tracing off in the same scenario."""

    scenario: str
    case: str
    micros: float
    off: float


async def measure(calls: int, repeats: int) -> list[Row]:
    """Run every scenario's cases interleaved; return their least CPU per call."""
    registry_app = App(id="app", name="bench")
    registry = Registry(
        [registry_app], [Function(id="echo", name="echo", app=registry_app, image="echo")]
    )
    setups: dict[str, tuple[TracingHooks | None, TracerProvider | None]] = {}
    for name, ratio in CASES:
        setups[name] = (None, None) if ratio is None else tracing_hooks(ratio)
    rows = []
    try:
        for scenario, nacks in SCENARIOS:
            runners: list[_Runner | _Refusing] = [*(_Refusing() for _ in range(nacks)), _Runner()]
            agent = LBAgent(_InOrder(), _Pool(runners))
            front = AccessLog(create_app(agent, registry))
            apps = {
                name: front if hooks is None else hooks.wrap_asgi(front)
                for name, (hooks, _) in setups.items()
            }

            least = dict.fromkeys(setups, float("inf"))
            for round_ in range(repeats + 1):
                order = list(setups) if round_ % 2 == 0 else list(setups)[::-1]
                for name in order:
                    micros = await block(apps[name], *setups[name], calls)
                    if round_:  # the first round warms up
                        least[name] = min(least[name], micros)
            off = least[CASES[0][0]]
            rows += [Row(scenario, name, micros, off) for name, micros in least.items()]
            await agent.aclose()
    finally:
        _tracing.active = None
        for _, provider in setups.values():
            if provider is not None:
                provider.shutdown()
    return rows


def main(argv: Sequence[str] | None = None, out: Callable[[str], object] = print) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per timed block")
    parser.add_argument("--repeats", type=int, default=7, help="repeats; the least is kept")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.calls, args.repeats))
    out(
        f"LB front end + placement in process, CPU per call (least of {args.repeats} x "
        f"{args.calls}); ratio and extra against tracing off"
    )
    out(f"{'scenario':<14} {'tracing':<22} {'CPU µs/call':>11} {'ratio':>7} {'extra µs':>9}")
    for row in rows:
        out(
            f"{row.scenario:<14} {row.case:<22} {row.micros:>11.1f} "
            f"{row.micros / row.off:>7.3f} {row.micros - row.off:>+9.1f}"
        )


if __name__ == "__main__":
    main()
