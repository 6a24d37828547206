"""Metric registration, tags and Prometheus exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from runnerpool import NaivePlacer, metrics
from runnerpool._model import Call
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy
from tests.helpers import FN_LATENCY_BUCKETS

PLACER_METRICS = {
    "lb_placer_attempt_count": "LB Placer Number of Runners Attempted Count",
    "lb_placer_rp_error_count": "LB Placer RunnerPool RunnerList Error Count",
    "lb_placer_rp_empty_count": "LB Placer RunnerPool RunnerList Empty Count",
    "lb_placer_client_cancelled_count": "LB Placer Client Cancel Count",
    "lb_placer_client_timeout_count": "LB Placer Client Timeout Count",
    "lb_placer_timeout_count": "LB Placer Timeout Count",
    "lb_placer_placed_error_count": "LB Placer Placed Call Count With Errors",
    "lb_placer_placed_abort_count": "LB Placer Placed Call Count With Client Timeout/Cancel",
    "lb_placer_placed_ok_count": "LB Placer Placed Call Count Without Errors",
    "lb_placer_retry_busy_count": "LB Placer Retry Count - Too Busy",
    "lb_placer_retry_error_count": "LB Placer Retry Count - Errors",
    "lb_placer_latency": "LB Placer Latency",
}


def families(registry: CollectorRegistry | None = None) -> dict[str, Metric]:
    """Parse the exposition back with prometheus_client's own parser."""
    text = metrics.exposition(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


class TestRegistration:
    def test_twelve_views_with_fn_names_and_descriptions(self) -> None:
        """Registering exposes Fn's twelve placer metrics, named and described as Fn does."""
        views = metrics.register_placer_views([], FN_LATENCY_BUCKETS)
        assert {v.name: v.description for v in views.views()} == PLACER_METRICS
        assert views.attempt_count.bounds == (0, 2, 3, 4, 8, 16, 32, 64, 128, 256)
        assert views.latency.bounds == FN_LATENCY_BUCKETS

    async def test_nothing_recorded_when_unregistered(self) -> None:
        """Without registration the placers record nothing and nothing is exposed."""
        await NaivePlacer().place_call(FakeRunnerPool([FakeRunner("ok")]), FakeCall())
        assert metrics.placer_views() is None
        assert not any(name.startswith("fn_lb_placer") for name in families())

    def test_bad_tag_key(self) -> None:
        """A tag key that is not a Prometheus label name is refused, naming the key."""
        with pytest.raises(ValueError, match="'fn-id'"):
            metrics.register_placer_views(["fn-id"], [1, 2])

    def test_bad_buckets(self) -> None:
        """Latency buckets that do not increase are refused."""
        with pytest.raises(ValueError, match="strictly increasing"):
            metrics.register_placer_views([], [10, 5])

    def test_registering_again_replaces(self) -> None:
        """A second registration replaces the first instead of clashing in the registry."""
        metrics.register_placer_views([], [1])
        second = metrics.register_placer_views(["app"], [1, 2])
        assert metrics.placer_views() is second
        assert families()["fn_lb_placer_latency"] is not None

    def test_own_registry(self) -> None:
        """Views can go to a registry of the embedder's, and leave it on unregister."""
        registry = CollectorRegistry()
        metrics.register_placer_views([], [1], registry=registry, namespace="")
        assert "lb_placer_latency" in families(registry)
        metrics.unregister_placer_views()
        assert "lb_placer_latency" not in families(registry)


class TestExposition:
    async def test_counts_and_histograms_in_prometheus_text(self) -> None:
        """After a NACK then success, the text exposition carries the exact values."""
        metrics.register_placer_views(["fn_id"], FN_LATENCY_BUCKETS)
        runners = [FakeRunner("a", busy()), FakeRunner("b")]
        with metrics.tagged(fn_id="f1"):
            await NaivePlacer().place_call(FakeRunnerPool(runners), FakeCall())
        found = families()
        busy_family = found["fn_lb_placer_retry_busy_count"]
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in busy_family.samples}
        assert samples == {("fn_lb_placer_retry_busy_count_total", (("fn_id", "f1"),)): 1.0}
        attempts = found["fn_lb_placer_attempt_count"]
        buckets = {s.labels["le"]: s.value for s in attempts.samples if s.name.endswith("_bucket")}
        # Prometheus buckets are inclusive: 2 attempts fall in le="2" (Fn's exporter: le="3").
        assert buckets["0"] == 0
        assert buckets["2"] == 1
        assert buckets["+Inf"] == 1
        text = metrics.exposition().decode()
        assert "# HELP fn_lb_placer_latency LB Placer Latency" in text

    async def test_tags_follow_the_context(self) -> None:
        """Each placement is counted under the tag values of its own context."""
        views = metrics.register_placer_views(["app", "fn_id"], [1])
        pool = FakeRunnerPool([FakeRunner("ok")])
        with metrics.tagged(app="a1"):
            with metrics.tagged(fn_id="f1"):
                await NaivePlacer().place_call(pool, FakeCall())
            await NaivePlacer().place_call(pool, FakeCall())
        assert views.placed_ok_count.value(("a1", "f1")) == 1
        assert views.placed_ok_count.value(("a1", "")) == 1
        assert metrics.current_tags(["app"]) == ("",)


class TestLBTags:
    async def test_fn_and_app_come_from_the_call_and_runner_from_the_attempt(self) -> None:
        """With fn_id, runner, app_id: attempts carry the runner, placements do not."""
        views = metrics.register_placer_views(["fn_id", "runner", "app_id"], [1])
        runners = [FakeRunner("a", busy()), FakeRunner("b")]
        call = FakeCall(Call(fn_id="f1", app_id="app1"))
        await NaivePlacer().place_call(FakeRunnerPool(runners), call)
        assert views.retry_busy_count.tag_keys == ("fn_id", "runner", "app_id")
        assert views.retry_busy_count.value(("f1", "a", "app1")) == 1
        assert views.placed_ok_count.value(("f1", "b", "app1")) == 1
        assert views.attempt_count.tag_keys == ("fn_id", "app_id")
        assert views.attempt_count.snapshot(("f1", "app1"))[1] == 1
        assert views.latency.tag_keys == ("fn_id", "app_id")

    async def test_a_tagged_block_overrides_the_call(self) -> None:
        """Values set with tagged() win over the call's own ids."""
        views = metrics.register_placer_views(["fn_id"], [1])
        with metrics.tagged(fn_id="from-context"):
            await NaivePlacer().place_call(
                FakeRunnerPool([FakeRunner("ok")]), FakeCall(Call(fn_id="f1"))
            )
        assert views.placed_ok_count.value(("from-context",)) == 1

    def test_agent_views_keep_runner_for_runner_latencies_only(self) -> None:
        """The LB agent's per-call views drop runner; call_status still comes first."""
        views = metrics.register_lb_agent_views(["runner", "fn_id"], [1])
        assert views.calls.tag_keys == ("fn_id",)
        assert views.running.tag_keys == ("fn_id",)
        assert views.call_latency.tag_keys == ("call_status", "fn_id")
        assert views.runner_exec_latency.tag_keys == ("runner", "fn_id")
        tags = views.call_tags(Call(fn_id="f1"))
        assert tags == ("f1",)
        assert views.runner_tags(tags, "r:1") == ("r:1", "f1")

    def test_untagged_exposition_is_fn_s(self) -> None:
        """With no tag keys the exposition has Fn's names and no label but le and call_status."""
        placer = metrics.register_placer_views([], FN_LATENCY_BUCKETS)
        agent = metrics.register_lb_agent_views([], FN_LATENCY_BUCKETS)
        placer.placed_ok_count.record(())
        agent.call_latency.record(("completed",), 3)
        text = metrics.exposition().decode()
        assert "fn_lb_placer_placed_ok_count_total 1.0\n" in text
        assert 'fn_lb_call_latency_bucket{call_status="completed",le="10"} 1.0\n' in text
        assert "runner=" not in text
        assert "fn_id=" not in text

    def test_parse_lb_tags(self) -> None:
        """The CLI's list: blanks ignored, order kept; unknown or repeated keys refused."""
        assert metrics.parse_lb_tags(" fn_id , runner ") == ("fn_id", "runner")
        assert metrics.parse_lb_tags("") == ()
        with pytest.raises(ValueError, match="unknown metric tag 'route'"):
            metrics.parse_lb_tags("fn_id,route")
        with pytest.raises(ValueError, match="distinct"):
            metrics.parse_lb_tags("runner,runner")


class TestProcessCollectors:
    def test_added_once_and_removed(self) -> None:
        """Process, platform and gc metrics join a registry once, and leave it."""
        registry = CollectorRegistry()
        metrics.register_process_collectors(registry)
        metrics.register_process_collectors(registry)  # no duplicate-name error
        names = set(families(registry))
        assert {"process_cpu_seconds", "python_info", "python_gc_collections"} <= names
        metrics.unregister_process_collectors(registry)
        assert families(registry) == {}


class TestSettings:
    def test_lb_settings_check_the_tags(self) -> None:
        """LBSettings keeps the tags as a tuple, and names the field of an unknown one."""
        from runnerpool.lb import LBSettings

        assert LBSettings(metric_tags=("runner", "fn_id")).metric_tags == ("runner", "fn_id")
        with pytest.raises(ValueError, match=r"LBSettings\.metric_tags: unknown metric tag 'x'"):
            LBSettings(metric_tags=("x",))
