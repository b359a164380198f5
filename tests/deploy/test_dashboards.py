"""The Grafana dashboards under deploy/observability/grafana/: well-formed, on the provisioned data
source, and every query valid PromQL over Snapline's own metrics (tests/e2e/test_dashboard_metrics.py
checks those metrics exist on the running services)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# Grafana's built-in interval variables, the only ones the dashboards use; any duration parses.
GRAFANA_INTERVALS = re.compile(r"\$\{?__(?:rate_interval|interval|range)\}?")
GRID_COLUMNS = 24


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that show data: every panel but the rows that group them."""
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL expression) for every query of every dashboard."""
    for path in DASHBOARDS:
        for panel in data_panels(load(path)):
            for target in panel["targets"]:
                yield path.name, panel["title"], target["expr"]


def promql(expr: str) -> str:
    """A panel's expression as Prometheus would get it (Grafana's interval variables filled in)."""
    return GRAFANA_INTERVALS.sub("1m", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, from its syntax tree (not from its text, where
    label names, label values and function names look alike)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")

    promql_parser.walk(promql_parser.parse(promql(expr)), pre_visit=visit)
    return names


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboards' queries select."""
    return {name for _, _, expr in queries() for name in metric_names(expr)}


def datasource_uid() -> str:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    uid: str = source["uid"]
    return uid


def test_there_are_an_overview_and_a_live_dashboard_with_distinct_uids() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert {"snapline-overview", "snapline-live"} <= set(uids)
    assert len(uids) == len(set(uids)), uids
    for uid in uids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid), uid  # Grafana's limit on a uid


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert dashboard["templating"]["list"] == []  # no variables: the expressions are complete
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert all(isinstance(i, int) and i > 0 for i in ids) and len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            assert "targets" not in panel and not panel["panels"], panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_the_provisioned_prometheus(path: Path) -> None:
    source = {"type": "prometheus", "uid": datasource_uid()}
    panels = data_panels(load(path))
    assert len(panels) >= 9
    for panel in panels:
        assert panel["type"] == "timeseries" and panel["title"] and panel["description"], panel
        assert panel["datasource"] == source, panel["title"]
        targets = panel["targets"]
        assert targets, f"{panel['title']!r} has no query"
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["datasource"] == source, panel["title"]
            assert target["expr"].strip() and target["legendFormat"], panel["title"]


def test_every_query_is_promql_over_snapline_metrics() -> None:
    seen = 0
    for name, title, expr in queries():
        try:
            selected = metric_names(expr)
        except ValueError as exc:  # promql_parser raises ValueError naming the position
            pytest.fail(f"{name}: {title!r}: {exc}")
        assert "$" not in promql(expr), f"{name}: {title!r} uses a variable no dashboard defines"
        assert selected and all(m.startswith("snapline_") for m in selected), (name, title, selected)
        seen += 1
    assert seen >= 30


def test_metric_names_come_from_the_syntax_tree() -> None:
    expr = ('histogram_quantile(0.99, sum by (route, le) (rate(snapline_http_request_seconds_bucket'
            '{service="query", route=~"/v1/.*"}[$__rate_interval]))) / on (route) group_left '
            'sum by (route) ({__name__="snapline_http_requests_total", status="rate"})')  # fmt: skip
    assert metric_names(expr) == {"snapline_http_request_seconds_bucket", "snapline_http_requests_total"}
    with pytest.raises(ValueError):
        metric_names("sum by (service) (rate(snapline_http_requests_total[5m])")


def test_the_provider_loads_the_dashboards_folder() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "snapline.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    assert provider["allowUiUpdates"] is False
