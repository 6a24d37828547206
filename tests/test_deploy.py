"""The Grafana dashboard and the Prometheus alerting rules under deploy/.

Both are checked against JSON Schemas of the fields Grafana and Prometheus require
(tests/data/*.schema.json), every query is parsed as PromQL, and every metric a query names
is one a live load balancer or runner really exports: the names are read from their
``/metrics``, scraped over HTTP from real processes on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fdk.conftest import fdk_runner_command
from tests.lb.conftest import Processes

ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "runnerpool.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DATA = Path(__file__).parent / "data"

#: What Grafana puts in place of its variables before Prometheus sees a query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

#: The sample names a family of each type exports (beside the family's own name).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


def dashboard() -> Any:
    """The dashboard, parsed."""
    return json.loads(DASHBOARD.read_text())


def alert_rules() -> Any:
    """The rules file, parsed."""
    return yaml.safe_load(ALERTS.read_text())


def schema(name: str) -> Any:
    """A JSON Schema from tests/data."""
    return json.loads((DATA / name).read_text())


def panels() -> Iterator[Any]:
    """Every panel, those inside rows too."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every query of the dashboard and the rules."""
    found = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]
    for group in alert_rules()["groups"]:
        for rule in group["rules"]:
            found.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return found


def parse(expr: str) -> promql_parser.Expr:
    """Parse PromQL as Prometheus would get it from Grafana."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    parsed: promql_parser.Expr = promql_parser.parse(expr)
    return parsed


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(parse(expr), visit)
    return names


def exported_names(text: str) -> set[str]:
    """Every sample name the families of a Prometheus text exposition can export."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES[family.type]
    }


class TestDashboard:
    def test_matches_the_schema_of_what_grafana_requires(self) -> None:
        """The dashboard loads and has the fields an import needs, of the right types."""
        jsonschema.validate(dashboard(), schema("grafana-dashboard.schema.json"))

    def test_panel_ids_are_unique_and_targets_use_the_datasource_variable(self) -> None:
        """Panel ids are unique, refIds unique per panel, and every query names ${datasource}."""
        ids = [panel["id"] for panel in panels()]
        assert len(ids) == len(set(ids))
        variables = {v["name"] for v in dashboard()["templating"]["list"]}
        assert "datasource" in variables
        for panel in panels():
            if panel["type"] == "row":
                continue
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
            for source in (panel, *panel["targets"]):
                assert source["datasource"]["uid"] == "${datasource}", panel["title"]

    def test_panels_fit_the_grid_without_overlapping(self) -> None:
        """No two panels share a grid cell, and none goes past the 24 columns."""
        taken: set[tuple[int, int]] = set()
        for panel in panels():
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, panel["title"]
            taken |= cells

    def test_covers_what_an_operator_watches(self) -> None:
        """Calls and errors by status, attempts, NACKs, cold starts, saturation, latencies."""
        titles = {str(panel["title"]) for panel in panels()}
        for wanted in (
            "Calls by status",
            "Error ratio",
            "Placement attempts per call",
            "NACK rate (load balancer's view)",
            "NACK rate (runners' view)",
            "Cold-start rate",
            "Runner saturation",
            "Load balancer latency percentiles",
            "Runner call duration percentiles",
        ):
            assert wanted in titles


class TestAlertRules:
    def test_matches_prometheus_rule_file_shape(self) -> None:
        """alerts.yml is YAML of Prometheus' rule groups; alert names are unique."""
        rules = alert_rules()
        jsonschema.validate(rules, schema("prometheus-rules.schema.json"))
        names = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
        assert len(names) == len(set(names))
        assert {
            "RunnerpoolNoReachableRunner",
            "RunnerpoolNackStorm",
            "RunnerpoolErrorRatio",
        } <= set(names)

    def test_every_alert_has_a_severity_and_a_summary(self) -> None:
        """Each alert carries the labels and annotations routing and paging need."""
        for group in alert_rules()["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]

    def test_the_schema_rejects_a_malformed_rule(self) -> None:
        """The rules schema is not vacuous: a bad duration and an unknown key are refused."""
        rules_schema = schema("prometheus-rules.schema.json")
        bad_for = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "5"}]}]}
        unknown = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "fro": "5m"}]}]}
        documents: list[object] = [bad_for, unknown, {"group": []}]
        for document in documents:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(document, rules_schema)


class TestQueries:
    @pytest.mark.parametrize(("where", "expr"), queries())
    def test_is_valid_promql(self, where: str, expr: str) -> None:
        """Every query of the dashboard and the rules parses as PromQL."""
        assert metric_names(expr), where

    def test_parser_finds_names_and_rejects_nonsense(self) -> None:
        """The name extraction sees through functions and operators; bad PromQL raises."""
        assert metric_names(
            "histogram_quantile(0.9, sum by (le) (rate(a_bucket[$__rate_interval]))) / b"
        ) == {"a_bucket", "b"}
        with pytest.raises(ValueError, match=r"."):
            parse("sum(rate(a[5m])")

    def test_every_query_names_a_metric_the_project_exports(self, tmp_path: Path) -> None:
        """The names in every query are exported by a live load balancer or FDK runner."""
        processes = Processes(tmp_path)
        try:
            runner = processes.start(
                fdk_runner_command(
                    ROOT / "examples",
                    tmp_path / "state",
                    *("--max-calls", "4", "--no-sandbox", "--metrics-port", "0"),
                ),
                "runner listening on ",
                ready_lines=2,
            )
            address, metrics_line = runner.address.split("\n")
            lb = processes.lb([address], "--metric-tags", "fn_id,app_id,runner")
            with httpx.Client(timeout=30) as client:
                lb_text = client.get(f"{lb.address}/metrics").text
                runner_text = client.get(metrics_line.removeprefix("runner metrics on ")).text
        finally:
            processes.close()
        exported = exported_names(lb_text) | exported_names(runner_text)
        assert "fn_calls_total" in exported
        assert "runnerpool_runner_hot_processes" in exported
        missing = {
            (where, name)
            for where, expr in queries()
            for name in metric_names(expr)
            if name not in exported
        }
        assert not missing


def test_query_names_are_read_from_the_query_not_guessed() -> None:
    """A name the project does not export is reported, so the check can fail."""
    exported = exported_names("# TYPE fn_calls counter\nfn_calls_total 1\n")
    assert exported == {"fn_calls_total", "fn_calls_created"}
    assert metric_names("rate(fn_callz_total[5m])") - exported == {"fn_callz_total"}
    assert re.fullmatch(r"[a-z_]+", next(iter(metric_names("up"))))
