"""A real OTLP/HTTP trace receiver for tests: what an OpenTelemetry collector's port 4318 does with
POST /v1/traces (a protobuf ExportTraceServiceRequest), decoded with the OpenTelemetry proto
package's generated classes and kept as plain records to assert on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.infra import free_port

PROTOBUF = "application/x-protobuf"
KINDS = {v: k.removeprefix("SPAN_KIND_").lower() for k, v in Span.SpanKind.items()}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name
    name: str
    kind: str  # server, client, producer, consumer, internal
    trace_id: str  # hex
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id)


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    return None if which is None else getattr(v, which)


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one OTLP export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=s.name,
                        kind=KINDS[s.kind],
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                    )
                )
    return out


class OtlpReceiver:
    """`async with OtlpReceiver() as receiver:` listens on a free port of 127.0.0.1 until the block ends.

    `status` is what export requests are answered (200 accepts them); while `hold` is cleared,
    requests wait before they are read, as a collector that has stalled.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.status = 200
        self.hold = asyncio.Event()
        self.hold.set()
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"OtlpReceiver({self.url!r}, requests={self.requests}, spans={len(self.spans)})"

    async def _traces(self, request: web.Request) -> web.Response:
        self.requests += 1
        await self.hold.wait()
        if request.content_type != PROTOBUF:
            return web.Response(status=415, text=f"expected {PROTOBUF}")
        if self.status != 200:
            return web.Response(status=self.status)
        try:
            self.spans.extend(decode(await request.read()))
        except DecodeError as exc:
            return web.Response(status=400, text=str(exc))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)

    def where(self, check: Callable[[ReceivedSpan], bool]) -> list[ReceivedSpan]:
        return [s for s in self.spans if check(s)]

    async def __aenter__(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()
