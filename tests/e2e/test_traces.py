"""One trace across Kafka: a play posted to the gateway is one OTLP trace, gateway -> ingest ->
Kafka -> query, analytics and live, as an OpenTelemetry collector receives it.

The five services run as processes of a private stack (the suite's own stack exports nothing),
with TRACE_EXPORTER=otlp and OTEL_EXPORTER_OTLP_ENDPOINT pointed at a real OTLP/HTTP receiver.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import SERVICES, BenchStack
from services.gateway.accounts import create_key
from shared.config import Settings
from tests.factories import event_dict
from tests.infra import free_port
from tests.otlp import OtlpReceiver, ReceivedSpan
from tests.stack import eventually

CONSUMERS = ("query", "analytics", "live")


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as running:
        yield running


@pytest.fixture
async def traced_stack(receiver: OtlpReceiver) -> AsyncIterator[BenchStack]:
    prefix = f"otlptest{uuid.uuid4().hex[:10]}"
    env = {
        "TRACE_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",  # would win over the one above
        "TRACE_BATCH_DELAY_SECONDS": "0.2",  # the spans arrive within a fraction of a second
        "MODEL_PATH": str(Path(tempfile.gettempdir()) / f"{prefix}-no-model.json"),
    }
    ports = {name: free_port() for name in SERVICES}
    async with BenchStack(Settings.from_env("test"), log_level="info", name="otlptest", prefix=prefix,
                          ports=ports, env=env) as stack:  # fmt: skip
        yield stack


def _one(spans: list[ReceivedSpan], what: str) -> ReceivedSpan:
    assert len(spans) == 1, f"expected one {what}, got {spans}"
    return spans[0]


async def test_a_posted_play_is_one_trace_across_kafka(
    traced_stack: BenchStack, receiver: OtlpReceiver
) -> None:
    pool = await asyncpg.create_pool(traced_stack.database_url, min_size=1, max_size=1)
    _, key, _ = await create_key(pool, "otlp-feed", "feed")
    await pool.close()
    game_id = f"otlp{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession(traced_stack.gateway_url) as http:
        resp = await http.post("/v1/events", json=event_dict(game_id=game_id), headers={"X-API-Key": key})
        assert resp.status == 202, await resp.text()

    def posted(s: ReceivedSpan) -> bool:
        return s.service == "snapline-gateway" and s.name == "POST /v1/events"

    gateway = _one(await eventually(lambda: _ready(receiver.where(posted))), "gateway span")
    trace_id = gateway.trace_id

    async def whole_trace() -> list[ReceivedSpan] | None:
        spans = receiver.where(lambda s: s.trace_id == trace_id)
        services = {s.service for s in spans if s.kind == "consumer"}
        return spans if services >= {f"snapline-{c}" for c in CONSUMERS} else None

    spans = await eventually(whole_trace)

    def by(service: str, kind: str) -> ReceivedSpan:
        return _one(
            [s for s in spans if (s.service, s.kind) == (f"snapline-{service}", kind)], f"{service} {kind}"
        )

    assert (gateway.kind, gateway.parent_id) == ("server", ""), "the gateway starts the trace"

    ingest = by("ingest", "server")
    assert ingest.name == "POST /v1/events"
    assert ingest.parent_id == gateway.span_id, "the gateway's traceparent reached ingest"

    topic = f"{traced_stack.prefix}.plays.v1"
    send = by("ingest", "producer")
    assert (send.name, send.parent_id) == (f"send {topic}", ingest.span_id)
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["messaging.destination.name"] == topic
    assert send.attributes["messaging.operation.type"] == "send"

    for service in CONSUMERS:
        consumed = by(service, "consumer")
        assert consumed.parent_id == send.span_id, f"{service}'s span continues the record's trace"
        assert consumed.name == f"process {topic}"
        assert consumed.attributes["messaging.system"] == "kafka"
        assert consumed.attributes["messaging.destination.name"] == topic
        assert consumed.attributes["messaging.operation.type"] == "process"
        assert consumed.attributes["messaging.consumer.group.name"] == f"{traced_stack.prefix}-{service}"
        assert consumed.attributes["messaging.kafka.message.key"] == game_id

    # What was exported is counted where Prometheus reads it.
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"http://127.0.0.1:{traced_stack.ports['ingest']}/metrics")
        text = await r.text()
    assert _spans(text, "exported") >= 2
    assert _spans(text, "dropped") == 0


async def _ready(spans: list[ReceivedSpan]) -> list[ReceivedSpan] | None:
    return spans or None


def _spans(metrics: str, outcome: str) -> float:
    """ingest's snapline_trace_spans_total of `outcome`."""
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "snapline_trace_spans_total" and sample.labels == {
                "service": "ingest",
                "outcome": outcome,
            }:
                return sample.value
    raise AssertionError(f"no snapline_trace_spans_total of {outcome} on ingest's /metrics")
