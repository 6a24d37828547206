"""Whether calls are traced: :data:`active` is ``None`` (off, the default) or the hooks.

The placement loop, the runner service and the FDK executor read :data:`active` once at each
of their hook sites and do nothing more while it is ``None``: tracing that is off costs one
``is None`` check per site. This module imports nothing of OpenTelemetry; the hooks live in
:mod:`runnerpool.tracing` (the ``otel`` extra), which sets :data:`active` when tracing is
enabled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tracing import TracingHooks

__all__ = ["active", "start_from_environment"]

#: The tracing hooks in force, or ``None`` while tracing is off.
active: TracingHooks | None = None


def start_from_environment(
    service_name: str, environ: Mapping[str, str]
) -> Callable[[], object] | None:
    """Enable tracing as OpenTelemetry's environment variables say, for the command line.

    Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (not ``none``); the SDK
    reads that variable and the others (see
    :func:`~runnerpool.tracing.tracer_provider_from_environment`). Only the on/off test is
    made here: without it, OpenTelemetry would be imported by every process.

    Args:
        service_name: The service name unless ``OTEL_SERVICE_NAME`` gives one.
        environ: The process's environment.

    Returns:
        What stops tracing and exports the spans still buffered (call it on exit), or
        ``None`` when tracing stays off.

    Raises:
        ValueError: If tracing is asked for but OpenTelemetry or the exporter is not
            installed, or the variables are invalid.
    """
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() in ("", "none"):
        return None
    try:
        from .tracing import disable_tracing, enable_tracing, tracer_provider_from_environment
    except ImportError as exc:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER is set, but OpenTelemetry is not installed ({exc}): "
            "pip install 'runnerpool[otel]'"
        ) from None
    provider = tracer_provider_from_environment(service_name)
    if provider is None:
        return None
    enable_tracing(provider)

    def stop() -> None:
        disable_tracing()
        provider.shutdown()  # exports what is still buffered

    return stop
