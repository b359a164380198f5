"""Every metric the alert rules read (or name in their descriptions) is exposed by a running service
(the suite's own stack)."""

from __future__ import annotations

import re

import aiohttp

from bench.stack import BenchStack
from tests.deploy.test_alerts import rule_metrics

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created"), "info": ("_info",)}  # fmt: skip


async def test_every_metric_an_alert_reads_is_on_some_services_metrics(stack: BenchStack) -> None:
    exposed: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for name, port in stack.ports.items():
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200, name
                text = await resp.text()
            # A labelled metric with no sample yet still has its TYPE line.
            for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
                exposed.add(family)  # a counter's family is named with its _total here
                exposed.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
    missing = sorted(rule_metrics() - exposed)
    assert not missing, f"alert rules read metrics no service exposes: {missing}"
