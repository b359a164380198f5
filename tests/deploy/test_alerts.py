"""The alert rules under deploy/observability/: valid, and each one fires and stays quiet as its unit tests say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "observability"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool comes with Debian's prometheus package (make test installs it)"
)


def rule_metrics() -> set[str]:
    """The snapline_* metric names the alert rules' expressions read."""
    return set(re.findall(r"\bsnapline_[a-z0-9_]+", (RULES / "alerts.yml").read_text()))


@needs_promtool
def test_the_rules_are_valid() -> None:
    done = subprocess.run(
        [PROMTOOL, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 15 rules found" in done.stdout


@needs_promtool
def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "alerts.test.yml").read_text()))
    defined = set(re.findall(r"- alert: (\w+)", (RULES / "alerts.yml").read_text()))
    assert tested == defined, f"alerts without a unit test: {sorted(defined - tested)}"


def test_the_rules_name_only_snapline_metrics_and_some_of_them() -> None:
    assert len(rule_metrics()) >= 12
