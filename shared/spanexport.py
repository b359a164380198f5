"""The batch span processor every exporter sits behind, with its queue and outcomes in Prometheus."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import Counter, Gauge

from shared.config import TraceSettings

TRACE_SPANS = Counter(
    "snapline_trace_spans_total",
    "Finished spans by what became of them: exported, failed (the collector refused them or could "
    "not be reached) or dropped (the export queue was full)",
    ["service", "outcome"],
)
TRACE_QUEUE = Gauge(
    "snapline_trace_queue_spans",
    "Finished spans waiting to be exported (at most TRACE_QUEUE_SIZE)",
    ["service"],
)


class _Held:
    """A count of the spans in the SDK's queue, kept beside it.

    The SDK's BatchSpanProcessor holds finished spans in a deque of TRACE_QUEUE_SIZE and, when it
    is full, drops the oldest with a warning it logs once per 20 s; it exposes neither the
    queue's length nor a count of drops. Its queue only changes in two ways, which this count
    follows: a span is added (or, when full, replaces one), and a batch is taken for the exporter.
    """

    def __init__(self, service: str, capacity: int) -> None:
        self.capacity = capacity
        self._count = 0
        self._lock = threading.Lock()  # on_end runs on the event loop, exports on the SDK's thread
        self._dropped = TRACE_SPANS.labels(service, "dropped")
        TRACE_QUEUE.labels(service).set_function(lambda: self._count)

    def add(self) -> None:
        with self._lock:
            if self._count >= self.capacity:
                self._dropped.inc()
            else:
                self._count += 1

    def take(self, spans: int) -> None:
        with self._lock:
            self._count = max(self._count - spans, 0)


class _Counted(SpanExporter):
    """An exporter that counts what it exported and what failed."""

    def __init__(self, inner: SpanExporter, held: _Held, service: str) -> None:
        self._inner = inner
        self._held = held
        self._exported = TRACE_SPANS.labels(service, "exported")
        self._failed = TRACE_SPANS.labels(service, "failed")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._held.take(len(spans))
        try:
            result = self._inner.export(spans)
        except Exception:
            self._failed.inc(len(spans))
            raise
        (self._exported if result is SpanExportResult.SUCCESS else self._failed).inc(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class MeteredBatchProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor with the sizes of `settings`, its queue and outcomes counted:
    snapline_trace_queue_spans{service} and snapline_trace_spans_total{service,outcome}."""

    def __init__(self, exporter: SpanExporter, service: str, settings: TraceSettings) -> None:
        self._held = _Held(service, settings.queue_size)
        self.service = service
        super().__init__(
            _Counted(exporter, self._held, service),
            max_queue_size=settings.queue_size,
            max_export_batch_size=settings.batch_size,
            schedule_delay_millis=settings.delay_seconds * 1000,
        )

    def __repr__(self) -> str:
        return f"MeteredBatchProcessor(service={self.service!r}, capacity={self._held.capacity})"

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:  # what the SDK queues
            self._held.add()
        super().on_end(span)
