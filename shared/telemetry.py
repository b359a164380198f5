"""Tracing (OpenTelemetry, W3C trace context over HTTP and Kafka headers) and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.util.types import AttributeValue
from prometheus_client import Counter, Gauge, Histogram

from shared.config import TraceSettings
from shared.spanexport import MeteredBatchProcessor

_configured = False


class _Provider(TracerProvider):
    """The SDK's provider, which records spans only once something will receive them.

    With no exporter (TRACE_EXPORTER=none) a recorded span is built, timed and thrown away: about
    a tenth of a millisecond per request in each service a request passes through. Until a span
    processor is added, spans are sampled out: they still carry the trace context (ids, the
    traceparent header, Kafka headers, the trace_id in log lines), but record nothing.
    """

    def __init__(self, resource: Resource) -> None:
        self.recording = False
        super().__init__(resource=resource, sampler=_WhenRecording(self))

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.recording = True


class _WhenRecording(Sampler):
    """ParentBased(ALWAYS_ON) while the provider has a processor; otherwise every span is dropped."""

    def __init__(self, provider: _Provider) -> None:
        self._provider = provider
        self._sampled = ParentBased(ALWAYS_ON)
        self._dropped = SamplingResult(Decision.DROP)

    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        if self._provider.recording:
            return self._sampled.should_sample(*args, **kwargs)  # type: ignore[arg-type]
        return self._dropped

    def get_description(self) -> str:
        return "ParentBased(ALWAYS_ON) once a span processor is installed, else DROP"


def setup_tracing(service: str, settings: TraceSettings | None = None) -> None:
    """Install the SDK tracer provider once per process, sending spans where `settings` say."""
    global _configured
    if _configured:
        return
    settings = settings or TraceSettings()
    provider = _Provider(resource=Resource.create({"service.name": f"snapline-{service}"}))
    exporter = _exporter(settings)
    if exporter is not None:
        provider.add_span_processor(MeteredBatchProcessor(exporter, service, settings))
    trace.set_tracer_provider(provider)
    _configured = True


def _exporter(settings: TraceSettings) -> SpanExporter | None:
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    if settings.exporter == "otlp":
        # Imported here: the exporter brings an HTTP client and protobuf, which a process that
        # exports nothing (the CLI, TRACE_EXPORTER=none) need not load.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # OTLP over HTTP with protobuf bodies (the collector's port 4318). The endpoint comes from
        # the settings; headers, timeout, compression and TLS from the standard
        # OTEL_EXPORTER_OTLP_* variables, which the exporter reads itself.
        return OTLPSpanExporter(endpoint=settings.endpoint)
    return None


@cache
def tracer(name: str) -> trace.Tracer:
    # Cached: get_tracer builds a new Tracer (through a deprecation shim) on every call, about a
    # tenth of a millisecond per request. setup_tracing runs before the first call.
    return trace.get_tracer(name)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def inject_http(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (traceparent) to outgoing HTTP headers."""
    propagate.inject(headers)
    return headers


def extract_http(headers: Mapping[str, str]) -> Context:
    return propagate.extract(headers)


# Kafka spans carry the messaging semantic conventions' attributes, so that a trace backend shows
# them as messaging: the system, the topic, the operation and how many records a span covers.
def messaging_attributes(topic: str, operation: str, records: int = 1) -> dict[str, AttributeValue]:
    """The attributes of a Kafka span: `operation` is send (a producer) or process (a consumer)."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    if records != 1:
        attributes["messaging.batch.message_count"] = records
    return attributes


def kafka_headers(extra: Iterable[tuple[str, bytes]] = ()) -> list[tuple[str, bytes]]:
    """Kafka record headers carrying the current trace context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [*((k, v.encode()) for k, v in carrier.items()), *extra]


def extract_kafka(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    carrier = {k: v.decode("latin-1") for k, v in (headers or ())}
    return propagate.extract(carrier)


# The SDK keeps at most 128 links a span (OTEL_SPAN_LINK_COUNT_LIMIT).
BATCH_LINKS = 127


def batch_parent(
    headers: Iterable[Sequence[tuple[str, bytes]] | None], links: int = BATCH_LINKS
) -> tuple[Context | None, list[trace.Link]]:
    """The trace of a batch of Kafka records: the first record's context, to continue its trace,
    and links to the other traces among them (one per distinct traceparent, at most `links`).

    Records of one request share a traceparent (an import's hundreds of records), so each
    distinct header is extracted once.
    """
    seen: set[bytes] = set()
    parent: Context | None = None
    out: list[trace.Link] = []
    for record in headers:
        traceparent = next((v for k, v in record or () if k == "traceparent"), None)
        if traceparent is None or traceparent in seen:
            continue
        seen.add(traceparent)
        context = extract_kafka(record)
        if parent is None:
            parent = context
            continue
        if len(out) >= links:
            break
        out.append(trace.Link(trace.get_current_span(context).get_span_context()))
    return parent, out


# Metrics shared by every service; service-specific ones live beside their code.
HTTP_REQUESTS = Counter(
    "snapline_http_requests_total", "HTTP requests served", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "snapline_http_request_seconds", "HTTP request latency", ["service", "route", "method"]
)
HTTP_IN_FLIGHT = Gauge("snapline_http_in_flight", "HTTP requests in progress", ["service"])
DEPENDENCY_UP = Gauge("snapline_dependency_up", "1 when a dependency is reachable", ["service", "dependency"])
CONSUMER_MESSAGES = Counter(
    "snapline_consumer_messages_total", "Kafka records handled", ["group", "topic", "outcome"]
)
CONSUMER_REWINDS = Counter(
    "snapline_consumer_rewinds_total",
    "Partitions moved back to their first unapplied record after a failed fetch (redelivery, never a skip)",
    ["group"],
)
CONSUMER_WAITS = Counter(
    "snapline_consumer_dependency_waits_total",
    "Handler attempts that failed on an unavailable dependency; the batch is retried, uncommitted",
    ["group", "dependency"],
)
CONSUMER_LAG = Gauge("snapline_consumer_lag", "Records behind the log end", ["group", "topic", "partition"])
CONSUMER_BATCH_SECONDS = Histogram(
    "snapline_consumer_batch_seconds", "Time to handle one fetched batch", ["group"]
)
PRODUCER_RECORDS = Counter("snapline_producer_records_total", "Records sent to Kafka", ["topic", "outcome"])
