"""The spans of one call, on the load balancer and on the runner, and how they are joined.

The load balancer's placement attempt sends its span's context to the runner as the W3C
``traceparent`` (and ``tracestate``) header *in the call's model*: the ``headers`` of
``models_call_json``, which Fn's wire format already carries and Fn's own runner passes on
to the function unchanged. The runner continues the trace from there and, before the call
runs, puts its execution span's context in the same headers, so the function (an FDK
function reads them as its request headers) can continue it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, MutableMapping
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._errors import NotPlacedError, RunnerBusyError
from ._asgi import TraceRequests
from ._names import (
    ADMISSION_SPAN,
    APP_ID,
    ATTEMPT_SPAN,
    CALL_ID,
    EXECUTION_SPAN,
    FN_ID,
    IMAGE,
    OUTCOME,
    PROCESS_START_SPAN,
    RUNNER,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from starlette.types import ASGIApp

    from .._interfaces import Runner, RunnerCall
    from .._model import Call
    from ..runner import Admission, Capacity, Execution, Executor

__all__ = ["TracingHooks", "inject_headers"]

_T = TypeVar("_T")


class _HeadersGetter(Getter[Mapping[str, list[str]]]):
    """Reads a call model's headers: Go's canonical names (``Traceparent``), any case."""

    def get(self, carrier: Mapping[str, list[str]], key: str) -> list[str] | None:
        values = carrier.get(_canonical(key))
        if values is not None:
            return values
        for name, found in carrier.items():
            if name.lower() == key:
                return found
        return None

    def keys(self, carrier: Mapping[str, list[str]]) -> list[str]:
        return list(carrier)


_GETTER = _HeadersGetter()


#: Canonical spellings already worked out: the propagators write the same few names.
_CANONICAL: dict[str, str] = {}


def _canonical(name: str) -> str:
    # Go's http.CanonicalHeaderKey, for the propagator's lower-case names: Fn's models carry
    # canonical names, and a second spelling of the header would reach the function twice.
    canonical = _CANONICAL.get(name)
    if canonical is None:
        canonical = _CANONICAL[name] = "-".join(part.capitalize() for part in name.split("-"))
    return canonical


def inject_headers(headers: MutableMapping[str, list[str]], context: Context) -> None:
    """Put a context's trace headers (``traceparent``, ``tracestate``) in a model's headers.

    Headers of the same names, in any case, are replaced: the trace continues from
    ``context``, not from what the client sent.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    for name, value in carrier.items():
        for stale in [key for key in headers if key.lower() == name]:
            del headers[stale]
        headers[_canonical(name)] = [value]


def _call_attributes(model: Call) -> dict[str, str]:
    return {CALL_ID: model.id, FN_ID: model.fn_id, APP_ID: model.app_id}


def _sampled_out(context: Context) -> bool:
    """Whether the context carries a trace that was sampled out (not: no trace at all)."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


def _failed(span: Span, error: BaseException) -> None:
    if isinstance(error, asyncio.CancelledError):
        span.set_status(Status(StatusCode.ERROR, "cancelled"))
        return
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class TracingHooks:
    """What the hook sites call while tracing is on: each makes the spans of one step.

    :func:`~runnerpool.tracing.enable_tracing` creates the hooks and sets them in
    ``runnerpool._tracing.active``.

    Args:
        tracer: Makes the spans.
    """

    __slots__ = ("tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    # -- The load balancer ------------------------------------------------------------------

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        """Return the front end with a span around each call (see :class:`TraceRequests`)."""
        return TraceRequests(app, self.tracer)

    async def attempt(self, runner: Runner, call: RunnerCall) -> None:
        """Offer the call to one runner under an attempt span (``runner.try_exec(call)``).

        The span is a child of the current one (the call's); its context goes to the runner
        in the call's headers. Its ``runnerpool.outcome`` is ``placed`` (the runner took the
        call, which may then have failed: the span's status says), ``nack`` (the runner
        refused, busy) or ``error`` (not placed: unreachable, closed).

        Raises:
            Exception: What ``runner.try_exec`` raised, unchanged.
        """
        model = call.model
        parent = trace.get_current_span()
        if parent.is_recording():
            parent.set_attributes(_call_attributes(model))
        else:
            sampled_out = parent.get_span_context()
            if sampled_out.is_valid and not sampled_out.trace_flags.sampled:
                # The call was sampled out, and so are its attempts (samplers decide by the
                # parent or by the trace id): only its context goes on, for the runner and the
                # function to follow the same decision. A span made here would record nothing,
                # yet cost a sampling decision and an id (docs/benchmarks.md).
                # Every attempt passes on the same context: after a NACK it is there already.
                sent = model.headers.get("Traceparent")
                if sent is None or format(sampled_out.span_id, "016x") not in sent[0]:
                    inject_headers(model.headers, otel_context.get_current())
                await runner.try_exec(call)
                return
        span = self.tracer.start_span(
            ATTEMPT_SPAN, kind=SpanKind.CLIENT, attributes={RUNNER: runner.address}
        )
        inject_headers(model.headers, trace.set_span_in_context(span))
        outcome = "placed"
        try:
            await runner.try_exec(call)
        except RunnerBusyError:
            outcome = "nack"
            raise
        except NotPlacedError as exc:
            outcome = "error"
            _failed(span, exc)
            raise
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            span.set_attribute(OUTCOME, outcome)
            span.end()

    # -- The runner --------------------------------------------------------------------------

    def admit(
        self,
        executor: Executor,
        model: Call,
        slot_key: bytes | None,
        extensions: Mapping[str, str],
        capacity: Capacity,
        draining: bool,
    ) -> Admission | None:
        """Ask the executor to admit the call (``None`` while draining) under an admission span.

        The span continues the trace the call's headers carry. Its ``runnerpool.outcome`` is
        ``admitted``, ``nack`` or ``error`` (the executor refused the call with an error).

        Raises:
            Exception: What the executor's ``admit`` raised, unchanged.
        """
        parent = propagate.extract(model.headers, getter=_GETTER)
        if _sampled_out(parent):
            return None if draining else executor.admit(model, slot_key, extensions, capacity)
        span = self.tracer.start_span(
            ADMISSION_SPAN, parent, SpanKind.SERVER, _call_attributes(model)
        )
        try:
            admission = None if draining else executor.admit(model, slot_key, extensions, capacity)
        except BaseException as exc:
            span.set_attribute(OUTCOME, "error")
            _failed(span, exc)
            span.end()
            raise
        span.set_attribute(OUTCOME, "nack" if admission is None else "admitted")
        span.end()
        return admission

    async def execute(self, executor: Executor, execution: Execution) -> None:
        """Run an admitted call under an execution span, current while it runs.

        The span continues the trace the call's headers carry; the headers then carry the
        span's own context, which is what the function receives.

        Raises:
            Exception: What the executor's ``execute`` raised, unchanged.
        """
        model = execution.model
        parent = propagate.extract(model.headers, getter=_GETTER)
        if _sampled_out(parent):
            # The function gets the load balancer's context as it came, unsampled.
            await executor.execute(execution)
            return
        span = self.tracer.start_span(EXECUTION_SPAN, parent, attributes=_call_attributes(model))
        current = trace.set_span_in_context(span, parent)
        inject_headers(model.headers, current)
        token = otel_context.attach(current)
        try:
            await executor.execute(execution)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    async def process_start(self, model: Call, starting: Awaitable[_T]) -> _T:
        """Await a function process's start (a cold start) under a span.

        The span is a child of the current one: the execution of the call that asked for
        the process. A call that is not recorded (sampled out) gets no span.
        """
        if not trace.get_current_span().is_recording():
            return await starting
        attributes = {**_call_attributes(model), IMAGE: model.image}
        with self.tracer.start_as_current_span(PROCESS_START_SPAN, attributes=attributes):
            return await starting
