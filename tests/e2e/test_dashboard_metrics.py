"""Every series the Grafana dashboards select is one a running service exposes (the suite's own stack).

Stricter than the alert rules' check beside it: a histogram is stored as `_bucket`, `_sum` and
`_count` series and a counter as `_total`, so a panel that selects a histogram's bare name, or a
counter without its `_total`, draws nothing and fails here.
"""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import BenchStack
from tests.deploy.test_dashboards import dashboard_metrics

STORED_AS = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("", "_sum", "_count"), "info": ("_info",)}  # fmt: skip


def stored_series(exposition: str) -> set[str]:
    """The series names Prometheus stores from one /metrics page (families with no sample yet too)."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(exposition)
        for suffix in STORED_AS.get(family.type, ("",))
    }


def test_stored_series_names_follow_the_metric_types() -> None:
    page = (
        "# TYPE snapline_a_total counter\n"
        "# TYPE snapline_b_seconds histogram\nsnapline_b_seconds_count 0.0\nsnapline_b_seconds_sum 0.0\n"
        "# TYPE snapline_c gauge\n"
    )
    assert stored_series(page) == {"snapline_a_total", "snapline_b_seconds_bucket", "snapline_b_seconds_sum",
                                   "snapline_b_seconds_count", "snapline_c"}  # fmt: skip


async def test_every_series_a_dashboard_selects_is_on_some_services_metrics(stack: BenchStack) -> None:
    exposed: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for name, port in stack.ports.items():
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200, name
                exposed |= stored_series(await resp.text())
    wanted = dashboard_metrics()
    assert len(wanted) >= 25
    missing = sorted(wanted - exposed)
    assert not missing, f"dashboard panels select series no service exposes: {missing}"
