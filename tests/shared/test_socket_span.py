"""A WebSocket's server span ends with its handshake, so an open socket holds no span or trace context."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.config import Settings
from shared.http import base_app
from shared.telemetry import current_trace_id


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """The spans finished from here on (base_app has installed the SDK's provider)."""
    base_app(Settings(service="spantest"))
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    collected = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    yield collected
    collected.shutdown()  # the processor stays on the provider, dropping what it gets


async def test_socket_span_ends_at_the_101_and_the_trace_is_still_logged(
    exporter: InMemorySpanExporter,
) -> None:
    app = base_app(Settings(service="spantest"))
    seen: dict[str, object] = {}
    release = asyncio.Event()

    async def socket(request: web.Request) -> web.WebSocketResponse:
        seen["before"] = current_trace_id()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seen["after"] = current_trace_id()  # the span is no longer current once the 101 is out
        await ws.send_str("hello")
        await release.wait()
        await ws.close()
        return ws

    app.router.add_get("/ws", socket)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/ws", headers={"traceparent": parent})
        assert (await ws.receive_str()) == "hello"
        finished = [s for s in exporter.get_finished_spans() if s.name == "GET /ws"]
        assert len(finished) == 1, "the span ends with the handshake, while the socket is open"
        span = finished[0]
        assert span.attributes is not None and span.attributes["http.status_code"] == 101
        assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
        assert seen == {"before": "0af7651916cd43dd8448eb211c80319c", "after": None}
        release.set()
        await ws.close()


async def test_a_refused_upgrade_still_ends_its_span_with_the_status(exporter: InMemorySpanExporter) -> None:
    app = base_app(Settings(service="spantest"))

    async def refuse(request: web.Request) -> web.Response:
        raise web.HTTPForbidden()

    app.router.add_get("/ws", refuse)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
        assert resp.headers["X-Request-ID"]
    spans = [s for s in exporter.get_finished_spans() if s.name == "GET /ws"]
    assert len(spans) == 1
    assert spans[0].attributes is not None and spans[0].attributes["http.status_code"] == 403
