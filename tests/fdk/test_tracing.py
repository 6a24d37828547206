"""Tracing through real processes: ``runnerpool lb`` and ``runnerpool runner`` with an FDK function.

Both are configured only by OpenTelemetry's variables (``OTEL_TRACES_EXPORTER=console``), as an
operator would; each prints its spans as JSON on stdout, read once it has exited.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fdk.conftest import fdk_runner_command
from tests.fdk.test_end_to_end import REGISTRY, short_tmpdir
from tests.lb.conftest import Process, Processes

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
TRACED = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def spans_of(process: Process) -> list[dict[str, Any]]:
    """Stop the process with SIGTERM and return the spans it printed (JSON, one after another)."""
    process.popen.send_signal(signal.SIGTERM)
    process.popen.wait(20)
    assert process.popen.stdout is not None
    text = process.popen.stdout.read()
    decoder = json.JSONDecoder()
    spans, index = [], text.find("{")
    while index != -1:
        span, end = decoder.raw_decode(text, index)
        spans.append(span)
        index = text.find("{", end)
    return spans


@pytest.mark.timeout(120)
async def test_fdk_call_is_one_trace_across_processes(tmp_path: Path, bundles_root: Path) -> None:
    """LB and runner spans (cold start included) share the client's trace; the function gets it."""
    processes = Processes(tmp_path)
    try:
        with short_tmpdir() as tmpdir:
            runner = processes.start(
                fdk_runner_command(bundles_root, tmp_path / "state", "--no-sandbox"),
                "runner listening on ",
                env={**TRACED, "TMPDIR": str(tmpdir)},
            )
            config = processes.config(REGISTRY, "e2e.toml")
            lb = processes.start(
                [
                    "--log-level",
                    "warning",
                    "lb",
                    "--port",
                    "0",
                    "--config",
                    str(config),
                    "--runner-addresses",
                    runner.address,
                ],
                "load balancer listening on ",
                env=TRACED,
            )
            async with httpx.AsyncClient(base_url=lb.address, timeout=60) as client:
                response = await client.post(
                    "/invoke/whoami", content=b"", headers={"traceparent": CLIENT_TRACEPARENT}
                )
            assert response.status_code == 200, response.text
            lb_spans = spans_of(lb)
            runner_spans = spans_of(runner)
    finally:
        processes.close()

    assert {s["resource"]["attributes"]["service.name"] for s in lb_spans} == {"runnerpool-lb"}
    assert {s["resource"]["attributes"]["service.name"] for s in runner_spans} == {
        "runnerpool-runner"
    }
    spans = {s["name"]: s for s in lb_spans + runner_spans}
    assert sorted(spans) == sorted(
        [
            "POST /invoke/{fn_id}",
            "runnerpool.attempt",
            "runnerpool.admission",
            "runnerpool.execution",
            "runnerpool.process_start",
        ]
    )
    assert {s["context"]["trace_id"] for s in spans.values()} == {f"0x{CLIENT_TRACE}"}
    attempt, execution = spans["runnerpool.attempt"], spans["runnerpool.execution"]
    assert attempt["parent_id"] == spans["POST /invoke/{fn_id}"]["context"]["span_id"]
    assert spans["runnerpool.admission"]["parent_id"] == attempt["context"]["span_id"]
    assert execution["parent_id"] == attempt["context"]["span_id"]
    assert spans["runnerpool.process_start"]["parent_id"] == execution["context"]["span_id"]
    assert attempt["attributes"]["runnerpool.outcome"] == "placed"

    # The FDK function saw the trace, its parent being the runner's execution.
    received = response.json()["headers"]["traceparent"]
    received = received[-1] if isinstance(received, list) else received
    _, trace_id, parent_id, _ = received.split("-")
    assert trace_id == CLIENT_TRACE
    assert f"0x{parent_id}" == execution["context"]["span_id"]
