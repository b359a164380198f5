"""Settings read from the environment: the event-loop choice."""

from __future__ import annotations

import pytest

from shared.config import Settings, SettingsError


def test_event_loop_defaults_to_uvloop_and_accepts_asyncio() -> None:
    assert Settings.from_env("query", {}).event_loop == "uvloop"
    assert Settings.from_env("query", {"EVENT_LOOP": " AsyncIO "}).event_loop == "asyncio"


def test_an_unknown_event_loop_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="EVENT_LOOP must be uvloop or asyncio, not 'trio'"):
        Settings.from_env("query", {"EVENT_LOOP": "trio"})
