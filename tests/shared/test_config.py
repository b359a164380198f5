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


def test_a_long_empty_full_collection_asks_for_a_freeze_and_is_counted() -> None:
    from prometheus_client import REGISTRY

    from shared.http import CollectorWatch

    def passes(watch: CollectorWatch, generation: int, seconds: float, collected: int) -> None:
        watch.callback("start", {"generation": generation})
        watch._started -= seconds  # a pass that took `seconds`
        watch.callback("stop", {"generation": generation, "collected": collected})

    before = REGISTRY.get_sample_value("snapline_gc_pause_seconds_count", {"generation": "2"}) or 0.0
    watch = CollectorWatch(freeze_pause=0.05, thaw_seconds=600)
    passes(watch, 2, 0.01, 0)
    passes(watch, 2, 0.2, 50)  # it freed something: the heap is not just long-lived objects
    passes(watch, 1, 0.2, 0)
    assert not watch.freeze_wanted
    passes(watch, 2, 0.2, 0)
    assert watch.freeze_wanted
    assert REGISTRY.get_sample_value("snapline_gc_pause_seconds_count", {"generation": "2"}) == before + 3
    off = CollectorWatch(freeze_pause=0, thaw_seconds=600)
    passes(off, 2, 1.0, 0)
    assert not off.freeze_wanted
