"""Tracing's configuration: OpenTelemetry's standard variables, read by the SDK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from runnerpool import _tracing
from runnerpool.cli import main
from runnerpool.tracing import disable_tracing, enable_tracing, tracer_provider_from_environment

#: Every variable these tests set, cleared first so the machine's own cannot leak in.
VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* variable from outside the test; tracing off afterwards."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    disable_tracing()


def exporters(provider: TracerProvider) -> list[object]:
    """The exporters of the provider's batch processors."""
    processors = provider._active_span_processor._span_processors
    return [p.span_exporter for p in processors if isinstance(p, BatchSpanProcessor)]


class TestFromEnvironment:
    @pytest.mark.parametrize("value", [None, "none", " None "])
    def test_no_exporter_is_off(self, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
        """OTEL_TRACES_EXPORTER unset or none: no provider, so tracing stays off."""
        if value is not None:
            monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
        assert tracer_provider_from_environment("runnerpool-lb") is None
        assert _tracing.start_from_environment("runnerpool-lb", {}) is None
        assert _tracing.active is None

    def test_console_with_default_service_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The console exporter, batched; the service is named after the command by default."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        provider = tracer_provider_from_environment("runnerpool-lb")
        assert provider is not None
        try:
            assert provider.resource.attributes["service.name"] == "runnerpool-lb"
            assert [type(e) for e in exporters(provider)] == [ConsoleSpanExporter]
        finally:
            provider.shutdown()

    def test_service_name_and_sampler_from_the_sdk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_SERVICE_NAME wins over the default; OTEL_TRACES_SAMPLER(_ARG) sets the sampler."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-lb")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
        provider = tracer_provider_from_environment("runnerpool-lb")
        assert provider is not None
        try:
            assert provider.resource.attributes["service.name"] == "edge-lb"
            assert isinstance(provider.sampler, ParentBasedTraceIdRatio)
            assert "0.25" in provider.sampler.get_description()  # type: ignore[no-untyped-call]
        finally:
            provider.shutdown()

    def test_otlp_over_http(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTLP over http/protobuf is the extra's exporter, sending to the endpoint given."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        provider = tracer_provider_from_environment("runnerpool-runner")
        assert provider is not None
        try:
            (exporter,) = exporters(provider)
            assert isinstance(exporter, OTLPSpanExporter)
            assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
        finally:
            provider.shutdown()

    @pytest.mark.parametrize("value", ["nonsense", "otlp"])
    def test_missing_exporter_is_a_clear_error(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        """An exporter that is not installed (otlp defaults to gRPC) says what to do."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
        with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"):
            tracer_provider_from_environment("runnerpool-lb")

    def test_start_and_stop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The command line's switch: on with an exporter, off again by what it returns."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        stop = _tracing.start_from_environment("runnerpool-lb", {"OTEL_TRACES_EXPORTER": "console"})
        assert stop is not None
        assert _tracing.active is not None
        stop()
        assert _tracing.active is None


class TestEnable:
    def test_disabled_sdk_leaves_tracing_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_SDK_DISABLED=true makes the SDK's tracers no-ops: the hooks stay off."""
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        provider = TracerProvider()
        enable_tracing(provider)
        assert _tracing.active is None

    def test_enable_and_disable(self) -> None:
        """enable_tracing sets the hooks; disable_tracing removes them."""
        provider = TracerProvider()
        enable_tracing(provider)
        assert _tracing.active is not None
        disable_tracing()
        assert _tracing.active is None
        provider.shutdown()


class TestCommandLine:
    def test_bad_exporter_stops_the_command_with_a_message(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`runnerpool lb` with an unknown exporter exits 1, naming the variable, before serving."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "nonsense")
        result = CliRunner().invoke(main, ["lb", "--help"])
        assert result.exit_code == 1
        assert "OTEL_TRACES_EXPORTER" in result.output
        assert _tracing.active is None

    def test_other_commands_are_not_traced(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Commands that serve no calls ignore OTEL_TRACES_EXPORTER."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "nonsense")
        result = CliRunner().invoke(main, ["status", "--help"])
        assert result.exit_code == 0


class TestWithoutTheExtra:
    def test_asking_for_tracing_without_opentelemetry_says_what_to_install(self) -> None:
        """Without OpenTelemetry installed, OTEL_TRACES_EXPORTER gets an error naming the extra."""
        code = (
            "import sys\n"
            "sys.modules['opentelemetry'] = None  # as if not installed\n"
            "from runnerpool import _tracing\n"
            "assert _tracing.start_from_environment('x', {}) is None\n"
            "try:\n"
            "    _tracing.start_from_environment('x', {'OTEL_TRACES_EXPORTER': 'console'})\n"
            "except ValueError as exc:\n"
            "    print(exc)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert "pip install 'runnerpool[otel]'" in out.stdout
