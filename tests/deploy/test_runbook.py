"""docs/operations.md keeps up with the alert rules: every alert has its own section there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_alert_has_a_section_in_the_runbook() -> None:
    alerts = re.findall(r"^\s*- alert: (\w+)$", (ROOT / "deploy" / "observability" / "alerts.yml").read_text(),
                        re.MULTILINE)  # fmt: skip
    sections = set(re.findall(r"^### (\w+)$", (ROOT / "docs" / "operations.md").read_text(), re.MULTILINE))
    assert len(alerts) >= 13
    missing = [name for name in alerts if name not in sections]
    assert not missing, f"docs/operations.md has no section (### <name>) for the alerts {missing}"
