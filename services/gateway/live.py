"""GET /v1/live: the client's WebSocket joined to one opened on the live service, both ways."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSMsgType, web

from services.gateway.keys import CLIENT
from services.gateway.proxy import upstream_headers, upstream_url
from shared.errors import ApiError
from shared.logging import get_logger

log = get_logger(__name__)
HEARTBEAT = 30.0
Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def live_socket(request: web.Request) -> web.StreamResponse:
    """Open the upstream socket first, so a live service that is down is a JSON 503, not a dead socket."""
    client = web.WebSocketResponse(heartbeat=HEARTBEAT)
    if not client.can_prepare(request).ok:
        raise ApiError(
            426, "upgrade_required", "GET /v1/live is a WebSocket: send an Upgrade: websocket request"
        )
    # The token may ride in the query string; the live service needs the caller, not the token.
    url = upstream_url(request, "live")
    url = url.with_query({k: v for k, v in url.query.items() if k != "access_token"})
    headers = upstream_headers(request)
    try:
        upstream = await request.app[CLIENT].ws_connect(url, headers=headers, heartbeat=HEARTBEAT)
    except aiohttp.WSServerHandshakeError as exc:
        raise ApiError(502, "bad_gateway", f"the live service refused the WebSocket ({exc.status})") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("upstream_unreachable", upstream="live", error=f"{type(exc).__name__}: {exc}")
        raise ApiError(
            503, "upstream_unavailable", "the live service is not reachable; retry shortly",
            headers={"Retry-After": "2"},
        ) from None  # fmt: skip
    client.headers["X-Request-ID"] = headers["X-Request-ID"]
    async with upstream:
        await client.prepare(request)
        await _join(client, upstream)
    return client


async def _join(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    pumps = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    # Whichever side closed first, its code reaches the other side.
    code = _close_code(done)
    await client.close(code=code)
    await upstream.close(code=code)


def _close_code(done: set[asyncio.Task[int]]) -> int:
    for task in done:
        if not task.cancelled() and task.exception() is None:
            code = task.result()
            # 1005, 1006 and 1015 describe a connection; they are never sent in a close frame.
            if 1000 <= code < 5000 and code not in (1005, 1006, 1015):
                return code
    return int(aiohttp.WSCloseCode.GOING_AWAY)


async def _pump(source: Socket, sink: Socket) -> int:
    """Copy text and binary messages until `source` closes; its close code, else 1000."""
    async for msg in source:
        if msg.type is WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif msg.type is WSMsgType.ERROR:
            return int(aiohttp.WSCloseCode.INTERNAL_ERROR)
    return source.close_code or int(aiohttp.WSCloseCode.OK)
