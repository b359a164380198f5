"""Spans are recorded only once something receives them; the trace context travels either way."""

from __future__ import annotations

from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.telemetry import _Provider

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
