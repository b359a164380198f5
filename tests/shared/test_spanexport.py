"""The batch span processor against a real OTLP/HTTP receiver: its queue is bounded by the
settings, and what was exported, failed or dropped is counted for Prometheus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from prometheus_client import REGISTRY

from shared.config import TraceSettings
from shared.spanexport import MeteredBatchProcessor
from shared.telemetry import _Provider
from tests.otlp import OtlpReceiver
from tests.stack import eventually


def _spans(service: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("snapline_trace_spans_total", {"service": service, "outcome": outcome})
        or 0.0
    )


def _queued(service: str) -> float | None:
    return REGISTRY.get_sample_value("snapline_trace_queue_spans", {"service": service})


def _until(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def poll() -> bool:
        return check()

    return poll


async def test_a_stalled_collector_fills_the_queue_then_spans_are_dropped_and_counted(unique: str) -> None:
    service = f"spantest-{unique}"
    async with OtlpReceiver() as receiver:
        settings = TraceSettings(exporter="otlp", endpoint=f"{receiver.url}/v1/traces", queue_size=2,
                                 batch_size=2, delay_seconds=60)  # fmt: skip
        provider = _Provider(Resource.create({"service.name": service}))
        provider.add_span_processor(
            MeteredBatchProcessor(OTLPSpanExporter(endpoint=settings.endpoint), service, settings)
        )
        tracer = provider.get_tracer("test")

        def finish(count: int) -> None:
            for i in range(count):
                tracer.start_span(f"span {i}").end()

        try:
            receiver.hold.clear()  # the collector stalls
            finish(2)  # a full batch: the SDK's thread takes it and waits on the receiver
            await eventually(_until(lambda: receiver.requests == 1), timeout=10)
            assert _queued(service) == 0
            finish(5)  # two fill the queue of 2; three are dropped
            assert (_queued(service), _spans(service, "dropped")) == (2, 3)

            receiver.hold.set()  # it answers again: both batches go through
            await eventually(_until(lambda: _spans(service, "exported") == 4), timeout=10)
            assert len(receiver.spans) == 4 and {s.service for s in receiver.spans} == {service}
            assert _queued(service) == 0

            receiver.status = 400  # a request the collector refuses is not retried, but counted
            finish(2)
            await eventually(_until(lambda: _spans(service, "failed") == 2), timeout=10)
            assert (_spans(service, "exported"), _spans(service, "dropped"), len(receiver.spans)) == (4, 3, 4)
        finally:
            receiver.hold.set()
            provider.shutdown()
