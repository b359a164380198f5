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


def test_every_pass_is_timed_by_generation() -> None:
    from prometheus_client import REGISTRY

    from shared.http import CollectorWatch

    def count(generation: str) -> float:
        return REGISTRY.get_sample_value("snapline_gc_pause_seconds_count", {"generation": generation}) or 0.0

    watch = CollectorWatch(freeze_seconds=1.0, thaw_seconds=600)
    before = count("2"), count("0")
    for generation in (2, 2, 0):
        watch.callback("start", {"generation": generation})
        watch.callback("stop", {"generation": generation, "collected": 0})
    assert (count("2"), count("0")) == (before[0] + 2, before[1] + 1)


def test_frozen_objects_leave_full_passes_until_a_thaw_frees_their_cycles() -> None:
    import gc
    import weakref

    from shared.http import CollectorWatch

    class Node:
        other: Node

    watch = CollectorWatch(freeze_seconds=1.0, thaw_seconds=600)
    a, b = Node(), Node()
    a.other, b.other = b, a  # a garbage cycle once the names go: only the cyclic collector frees it
    gone = weakref.ref(a)
    try:
        watch.freeze()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: full passes do not look at it
        assert watch.thaw() >= 2
        assert gone() is None and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_the_otlp_endpoint_is_read_as_the_opentelemetry_specification_says() -> None:
    assert Settings.from_env("ingest", {}).tracing.endpoint == "http://localhost:4318/v1/traces"
    base = {"TRACE_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318/"}
    tracing = Settings.from_env("ingest", base).tracing
    assert (tracing.exporter, tracing.endpoint) == ("otlp", "http://otel-collector:4318/v1/traces")
    # The traces endpoint, when given, is the whole URL and wins.
    traces = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example:4318/custom"}
    assert Settings.from_env("ingest", traces).tracing.endpoint == "https://traces.example:4318/custom"


def test_trace_settings_that_cannot_work_are_refused_by_name() -> None:
    with pytest.raises(
        SettingsError, match="TRACE_EXPORTER must be one of none, console, otlp, not 'jaeger'"
    ):
        Settings.from_env("query", {"TRACE_EXPORTER": "jaeger"})
    with pytest.raises(
        SettingsError, match="TRACE_BATCH_SIZE must be at least 1 and at most TRACE_QUEUE_SIZE"
    ):
        Settings.from_env("query", {"TRACE_QUEUE_SIZE": "100", "TRACE_BATCH_SIZE": "512"})
    with pytest.raises(SettingsError, match="TRACE_BATCH_DELAY_SECONDS must be more than 0"):
        Settings.from_env("query", {"TRACE_BATCH_DELAY_SECONDS": "0"})
