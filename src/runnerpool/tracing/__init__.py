"""Tracing with OpenTelemetry: a trace per call, across the load balancer and the runner.

Needs the ``otel`` extra (``pip install 'runnerpool[otel]'``). Off until enabled: while off,
the placement loop and the runner pay one ``is None`` check per hook site and import nothing
of OpenTelemetry. The command line enables it when ``OTEL_TRACES_EXPORTER`` is set (see the
README's "Tracing"); an embedder does it so::

    from runnerpool.tracing import enable_tracing, tracer_provider_from_environment

    enable_tracing(tracer_provider_from_environment("my-lb"))  # or any TracerProvider

The spans: the load balancer's call (``POST /invoke/{fn_id}``, a server span), a child per
placement attempt (``runnerpool.attempt``), and on the runner ``runnerpool.admission``,
``runnerpool.execution`` and, for a cold start, ``runnerpool.process_start``. The context
travels from the load balancer to the runner, and on to the function, as the W3C
``traceparent`` header in the call's headers.
"""

from __future__ import annotations

from ._hooks import TracingHooks as TracingHooks
from ._hooks import inject_headers as inject_headers
from ._names import (
    ADMISSION_SPAN as ADMISSION_SPAN,
)
from ._names import (
    ATTEMPT_SPAN as ATTEMPT_SPAN,
)
from ._names import (
    EXECUTION_SPAN as EXECUTION_SPAN,
)
from ._names import (
    PROCESS_START_SPAN as PROCESS_START_SPAN,
)
from ._setup import TRACER_NAME as TRACER_NAME
from ._setup import disable_tracing as disable_tracing
from ._setup import enable_tracing as enable_tracing
from ._setup import tracer_provider_from_environment as tracer_provider_from_environment

__all__ = [
    "ADMISSION_SPAN",
    "ATTEMPT_SPAN",
    "EXECUTION_SPAN",
    "PROCESS_START_SPAN",
    "TRACER_NAME",
    "TracingHooks",
    "disable_tracing",
    "enable_tracing",
    "inject_headers",
    "tracer_provider_from_environment",
]
