"""Metrics with dimensions: a load balancer started with ``--metric-tags fn_id,app_id,runner``.

Real runner and load balancer processes on 127.0.0.1. The load balancer's ``/metrics``,
scraped over HTTP, is reconciled exactly with the calls the test made per function, and with
each runner's own ``/metrics`` per runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from runnerpool.cli import main
from tests.lb.conftest import (
    Metrics,
    Process,
    Processes,
    eventually,
    get_metrics,
    statuses,
)

RUNNER_READY = "runner listening on "


def start_runner(processes: Processes, *args: str) -> tuple[Process, str]:
    """Start a one-slot runner serving its metrics; return it and its metrics URL."""
    runner = processes.start(
        [
            "--log-level",
            "warning",
            "runner",
            "--port",
            "0",
            "--max-calls",
            "1",
            "--metrics-port",
            "0",
            *args,
        ],
        RUNNER_READY,
        ready_lines=2,
    )
    address, metrics_line = runner.address.split("\n")
    runner.address = address
    url = metrics_line.removeprefix("runner metrics on ")
    assert url.startswith("http://127.0.0.1:"), url  # loopback by default
    return runner, url


async def scrape(url: str) -> Metrics:
    """GET a runner's /metrics over HTTP and parse it."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Metrics(response.text)


def label_sets(text: str, family: str) -> set[frozenset[str]]:
    """The label names of every sample of a family, in a Prometheus text exposition."""
    return {
        frozenset(sample.labels)
        for parsed in text_string_to_metric_families(text)
        if parsed.name == family
        for sample in parsed.samples
    }


@dataclass
class Tagged:
    """Two one-slot runners serving their metrics, behind a tagged load balancer."""

    runners: list[Process]
    metrics_urls: dict[str, str]
    client: httpx.AsyncClient


@pytest.fixture
async def tagged(processes: Processes) -> AsyncIterator[Tagged]:
    """A load balancer with every tag on, in front of two one-slot runners."""
    started = [start_runner(processes) for _ in range(2)]
    runners = [runner for runner, _ in started]
    urls = {runner.address: url for runner, url in started}
    lb = processes.lb([r.address for r in runners], "--metric-tags", "fn_id,app_id,runner")
    async with httpx.AsyncClient(base_url=lb.address, timeout=10) as client:
        yield Tagged(runners, urls, client)


class TestTaggedLB:
    async def test_counts_reconcile_per_function_and_per_runner(self, tagged: Tagged) -> None:
        """Per function the views count the calls made; per runner, what the runner counts.

        Per runner, the attempt views equal what each runner's own /metrics counts: its calls
        and its NACKs.
        """
        client = tagged.client
        made = {"echo": 4, "hello": 3, "fail": 2}
        for fn_id, count in made.items():
            for _ in range(count):
                answer = await client.post(f"/invoke/{fn_id}", content=b'{"name": "x"}')
                assert answer.status_code == (502 if fn_id == "fail" else 200)
        # A slow call holds its runner's only slot; a second one is NACKed by that runner
        # (consistent hashing offers it there first) and runs on the other.
        first = asyncio.create_task(client.post("/invoke/slow", content=b"0.8"))

        addresses = list(tagged.metrics_urls)

        async def one_active() -> bool:
            return sum(s.active_request_count for s in await statuses(addresses)) == 1

        await eventually(one_active, what="the first slow call running")
        found = await statuses(addresses)
        busy = next(a for a, s in zip(addresses, found, strict=True) if s.active_request_count)
        assert (await client.post("/invoke/slow", content=b"0.1")).status_code == 200
        assert (await first).status_code == 200
        made["slow"] = 2

        response = await client.get("/metrics")
        lb = Metrics(response.text)
        app_ids = {
            dict(labels)["app_id"] for (name, labels) in lb.samples if name == "fn_calls_total"
        }
        assert len(app_ids) == 1  # the call's app, from the registry
        assert "" not in app_ids
        (app,) = app_ids
        for fn_id, count in made.items():
            tags = {"fn_id": fn_id, "app_id": app}
            assert lb("fn_calls_total", **tags) == count
            assert lb("fn_completed_total", **tags) == (0 if fn_id == "fail" else count)
            assert lb("fn_errors_total", **tags) == (count if fn_id == "fail" else 0)
            assert lb("fn_lb_placer_attempt_count_count", **tags) == count
            assert lb("fn_lb_call_latency_count", call_status="completed", **tags) == (
                0 if fn_id == "fail" else count
            )
        # Per runner: the LB's view of each runner's attempts is that runner's own count.
        total_nacks = 0.0
        for address, url in tagged.metrics_urls.items():
            runner = await scrape(url)

            def at(name: str, runner_address: str = address) -> float:
                return sum(
                    value
                    for (sample, labels), value in lb.samples.items()
                    if sample == name and dict(labels).get("runner") == runner_address
                )

            assert at("fn_lb_placer_placed_ok_count_total") == runner(
                "runnerpool_runner_calls_total", outcome="success"
            )
            assert at("fn_lb_placer_placed_error_count_total") == runner(
                "runnerpool_runner_calls_total", outcome="function_error"
            )
            assert at("fn_lb_placer_retry_busy_count_total") == runner(
                "runnerpool_runner_nacks_total", reason="concurrency"
            )
            assert at("fn_lb_runner_exec_latency_count") == runner(
                "runnerpool_runner_admissions_total"
            )
            assert runner("runnerpool_runner_admissions_total") == runner(
                "runnerpool_runner_calls_total", outcome="success"
            ) + runner("runnerpool_runner_calls_total", outcome="function_error")
            assert runner("runnerpool_runner_calls_in_flight") == 0
            assert runner("runnerpool_runner_call_slots") == 1
            total_nacks += runner("runnerpool_runner_nacks_total", reason="concurrency")
        # The busy runner refused the second slow call. (A call may also meet a slot not yet
        # given back by the call before it: that NACK is counted on both sides alike.)
        assert total_nacks >= 1
        assert lb("fn_lb_placer_retry_busy_count_total", fn_id="slow", app_id=app, runner=busy) == 1
        assert sum(
            lb(f"fn_lb_placer_{kind}_count_total", fn_id=fn_id, app_id=app, runner=address)
            for kind in ("placed_ok", "placed_error")
            for fn_id in made
            for address in tagged.metrics_urls
        ) == sum(made.values())

    async def test_runner_labels_only_the_views_recorded_per_runner(self, tagged: Tagged) -> None:
        """``runner`` labels the attempt and runner-latency views; the per-call views lack it."""
        assert (await tagged.client.post("/invoke/echo", content=b"x")).status_code == 200
        text = (await tagged.client.get("/metrics")).text
        with_runner = frozenset({"fn_id", "app_id", "runner"})
        without = frozenset({"fn_id", "app_id"})
        for family in ("fn_lb_placer_placed_ok_count", "fn_lb_runner_exec_latency"):
            assert {labels - {"le"} for labels in label_sets(text, family)} == {with_runner}
        for family in ("fn_calls", "fn_completed", "fn_running", "fn_lb_placer_latency"):
            assert {labels - {"le"} for labels in label_sets(text, family)} == {without}
        assert {labels - {"le"} for labels in label_sets(text, "fn_lb_call_latency")} == {
            without | {"call_status"}
        }

    async def test_process_and_python_collectors_are_exported(self, tagged: Tagged) -> None:
        """The LB and the runners export prometheus_client's process, platform and gc metrics."""
        lb = await get_metrics(tagged.client)
        runner = await scrape(next(iter(tagged.metrics_urls.values())))
        for metrics in (lb, runner):
            names = {name for name, _ in metrics.samples}
            assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
            assert "python_info" in names
            assert "python_gc_collections_total" in names
            assert metrics("process_open_fds") > 0


class TestDefaults:
    async def test_no_tags_by_default(self, processes: Processes) -> None:
        """Without --metric-tags the views carry no label, as Fn registers them."""
        runner = processes.runner()
        lb = processes.lb([runner.address])
        async with httpx.AsyncClient(base_url=lb.address, timeout=10) as client:
            assert (await client.post("/invoke/echo", content=b"x")).status_code == 200
            metrics = await get_metrics(client)
        assert metrics("fn_calls_total") == 1
        assert metrics("fn_lb_placer_placed_ok_count_total") == 1
        labels = {
            name
            for sample, labels in metrics.samples
            if sample.startswith("fn_")
            for name, _ in labels
        }
        assert labels == {"le", "call_status"}  # buckets, and Fn's own lb_call_latency tag

    def test_unknown_tag_is_a_usage_error(self, processes: Processes) -> None:
        """``--metric-tags`` outside fn_id, app_id, runner is refused with a clear message."""
        result = CliRunner().invoke(
            main,
            [
                "lb",
                "--runner-addresses",
                "127.0.0.1:1",
                "--config",
                str(processes.config()),
                "--metric-tags",
                "fn_id,route",
            ],
        )
        assert result.exit_code == 2
        assert "unknown metric tag 'route': choose among fn_id, app_id, runner" in result.output

    def test_tags_from_the_environment(self, processes: Processes) -> None:
        """``FN_METRIC_TAGS`` is read as ``--metric-tags`` is, and checked the same way."""
        result = CliRunner().invoke(
            main,
            ["lb", "--runner-addresses", "127.0.0.1:1", "--config", str(processes.config())],
            env={"FN_METRIC_TAGS": "runner,image"},
        )
        assert result.exit_code == 2
        assert "unknown metric tag 'image'" in result.output
