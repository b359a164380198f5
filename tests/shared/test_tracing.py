"""Spans are recorded only once something receives them; the trace context travels either way."""

from __future__ import annotations

from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, get_current_span

from shared.telemetry import _Provider, batch_parent, messaging_attributes

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_no_processor_no_recording_but_the_trace_goes_on() -> None:
    provider = _Provider(Resource.create({"service.name": "snapline-tracetest"}))
    tracer = provider.get_tracer("test")
    parent = propagate.extract({"traceparent": PARENT})
    with tracer.start_as_current_span("GET /x", context=parent, kind=SpanKind.SERVER) as span:
        assert not span.is_recording()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    # The same trace, a span of its own: downstream services and log lines still join it.
    assert carrier["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert carrier["traceparent"].split("-")[2] != "b7ad6b7169203331"

    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with tracer.start_as_current_span("GET /y", context=parent, kind=SpanKind.SERVER) as span:
        assert span.is_recording()
    (finished,) = exported.get_finished_spans()
    assert finished.name == "GET /y"
    assert format(finished.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert finished.parent is not None and format(finished.parent.span_id, "016x") == "b7ad6b7169203331"
    provider.shutdown()


def test_a_batch_continues_its_first_records_trace_and_links_the_others() -> None:
    other = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
    headers: list[list[tuple[str, bytes]] | None] = [
        None,  # a record from before trace context: no parent of its own
        [("traceparent", PARENT.encode()), ("event_type", b"PlayEventBatch")],
        [("traceparent", other.encode())],
        [("traceparent", PARENT.encode())],  # the first trace again: neither a link nor a parent
        [("traceparent", other.encode())],
    ]
    parent, links = batch_parent(headers)
    assert parent is not None
    context = get_current_span(parent).get_span_context()
    assert (format(context.trace_id, "032x"), format(context.span_id, "016x")) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert [(format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in links] == [
        ("1af7651916cd43dd8448eb211c80319c", "c7ad6b7169203331")
    ]
    assert batch_parent([None, []]) == (None, [])


def test_kafka_spans_carry_the_messaging_conventions() -> None:
    assert messaging_attributes("snapline.plays.v1", "send") == {
        "messaging.system": "kafka",
        "messaging.destination.name": "snapline.plays.v1",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
    }
    assert messaging_attributes("t", "process", 3)["messaging.batch.message_count"] == 3
