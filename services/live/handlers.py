"""Thin handlers: the /v1/live WebSocket and the page that follows one game."""

from __future__ import annotations

import asyncio
import time
from importlib import resources

from aiohttp import WSMsgType, web

from services.live.keys import HUB, OPTIONS, REDIS, SEQUENCER
from services.live.messages import error
from services.live.session import Session
from shared.http import SETTINGS
from shared.logging import get_logger

log = get_logger(__name__)
PAGE = resources.files("services.live").joinpath("page.html").read_bytes()
# The page is inline-only: scripts and styles from itself, sockets to its own host.
PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_CLIENT_MESSAGE = 64 * 1024  # an op is under 10 KB (64 game ids): larger is answered, then closed
# What aiohttp reads of one message before closing with 1009 itself (and without an answer).
READ_LIMIT = 4 * MAX_CLIENT_MESSAGE


async def live_socket(request: web.Request) -> web.WebSocketResponse:
    """GET /v1/live: subscribe, unsubscribe and resume over one WebSocket."""
    request.app[REDIS].get()  # 503 before the upgrade while Redis is not connected
    hub = request.app[HUB]
    # permessage-deflate keeps a compressor per socket (~100 KB); off unless LIVE_WS_COMPRESS is set.
    compress = request.app[SETTINGS].live_ws_compress
    # No per-socket ping timer (aiohttp's heartbeat): the hub's keep-alive pings a slice of the
    # sockets at a time and drops those that stay silent; pongs and pings are handled here.
    ws = web.WebSocketResponse(autoping=False, max_msg_size=READ_LIMIT, compress=compress)
    await ws.prepare(request)
    # Uncompressed sockets take each message's one pre-built frame (compressed ones go through aiohttp).
    direct = None if compress else request.transport
    client = hub.connect(ws, peer=request.remote or "", transport=direct, socket=request.transport)
    loop = asyncio.get_running_loop()
    session = Session(client, hub, request.app[SEQUENCER], request.app[OPTIONS].max_games_per_client)
    opened = time.monotonic()
    log.info("ws_open", client=client.id, peer=client.peer)
    try:
        async for message in ws:
            client.seen = loop.time()
            if message.type is WSMsgType.PONG:
                continue
            if message.type is WSMsgType.PING:
                await ws.pong(message.data)
                continue
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY) and len(message.data) > MAX_CLIENT_MESSAGE:
                text = (f"a client message may hold at most {MAX_CLIENT_MESSAGE} bytes; "
                        f"this one held {len(message.data)}")  # fmt: skip
                hub.send(client, error("too_large", text))
                await client.finish(1009, "message too large")
                break
            if message.type == WSMsgType.TEXT:
                await session.handle(message.data)
            elif message.type == WSMsgType.BINARY:
                hub.send(client, error("bad_frame", "send JSON ops as text frames"))
    finally:
        games = len(client.games)
        await hub.disconnect(client)
        log.info(
            "ws_close",
            client=client.id,
            peer=client.peer,
            code=ws.close_code,
            sent=client.sent,
            games=games,
            seconds=round(time.monotonic() - opened, 3),
        )
    return ws


async def game_page(request: web.Request) -> web.Response:
    """GET /live/{game_id}: a self-contained page that follows one game (it reads the id from its URL)."""
    return web.Response(
        body=PAGE,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
    )
