"""Turning tracing on and off, and a tracer provider made from OpenTelemetry's variables."""

from __future__ import annotations

import importlib.metadata

from opentelemetry import trace
from opentelemetry.sdk._configuration import _get_exporter_names, _import_exporters
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from .. import _tracing
from ._hooks import TracingHooks

__all__ = ["disable_tracing", "enable_tracing", "tracer_provider_from_environment"]

#: The instrumentation scope of runnerpool's spans.
TRACER_NAME = "runnerpool"

#: Said when an exporter OTEL_TRACES_EXPORTER names is not installed.
_EXPORTER_HINT = (
    "the otel extra (pip install 'runnerpool[otel]') brings the console exporter and OTLP "
    "over HTTP: set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf with OTEL_TRACES_EXPORTER=otlp "
    "(the SDK's default protocol is gRPC, which needs opentelemetry-exporter-otlp-proto-grpc)"
)


def tracer_provider_from_environment(service_name: str) -> TracerProvider | None:
    """Return a tracer provider configured by OpenTelemetry's environment variables.

    The SDK reads them: ``OTEL_TRACES_EXPORTER`` (one or more exporters, e.g. ``otlp``,
    ``console``), ``OTEL_EXPORTER_OTLP_*`` (endpoint, protocol, headers), ``OTEL_SERVICE_NAME``
    and ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``,
    ``OTEL_BSP_*`` (batching). Spans are exported in batches, in a thread of the SDK's.

    Args:
        service_name: The service name when neither ``OTEL_SERVICE_NAME`` nor
            ``OTEL_RESOURCE_ATTRIBUTES`` gives one.

    Returns:
        The provider, or ``None`` when ``OTEL_TRACES_EXPORTER`` is unset or ``none``:
        tracing stays off.

    Raises:
        ValueError: If an exporter it names is not installed, or the OTLP protocol is unknown.
    """
    try:
        names = _get_exporter_names("traces")
        exporters, _, _ = _import_exporters(names, [], [])
    except RuntimeError as exc:
        raise ValueError(f"OTEL_TRACES_EXPORTER: {exc}; {_EXPORTER_HINT}") from None
    if not exporters:
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    # The sampler is the SDK's reading of OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
    provider = TracerProvider(resource=resource)
    for exporter in exporters.values():
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    return provider


def enable_tracing(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace every call from now on, with spans from ``tracer_provider``.

    Args:
        tracer_provider: Makes the spans; OpenTelemetry's global provider when omitted. A
            disabled SDK (``OTEL_SDK_DISABLED=true``) leaves tracing off.
    """
    provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    tracer = provider.get_tracer(TRACER_NAME, importlib.metadata.version("runnerpool"))
    if isinstance(tracer, trace.NoOpTracer):
        # Nothing would be recorded: the hook sites keep their one `is None` check.
        _tracing.active = None
        return
    _tracing.active = TracingHooks(tracer)


def disable_tracing() -> None:
    """Stop tracing calls; the hook sites are back to one ``is None`` check each."""
    _tracing.active = None
