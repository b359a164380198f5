"""The chaos table goes in the terminal summary, after every test's own output."""

from __future__ import annotations

import pytest

from tests.chaos.test_kill_during_import import TABLE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(TABLE, None)
    if lines:
        terminalreporter.write_sep("=", "chaos: what survived each kill")
        for line in lines:
            terminalreporter.write_line(line)
