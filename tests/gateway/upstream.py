"""A stand-in upstream service: echoes what the gateway forwarded, so tests can check it."""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        digest.update(chunk)
        size += len(chunk)
    if request.query.get("status"):
        headers = {"Retry-After": "7"}
        return web.json_response({"error": {"code": "x", "message": "y", "details": []}},
                                 status=int(request.query["status"]), headers=headers)  # fmt: skip
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.rel_url.raw_query_string,
            "headers": dict(request.headers),
            "size": size,
            "sha256": digest.hexdigest(),
        }
    )


async def slow(_: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.json_response({})


async def page(request: web.Request) -> web.Response:
    return web.Response(text=f"<html>{request.match_info['game_id']}</html>", content_type="text/html")


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = "application/x-ndjson"
    await response.prepare(request)
    for i in range(2000):
        await response.write(b'{"line": %d, "pad": "%s"}\n' % (i, b"x" * 1000))
    await response.write_eof()
    return response


class Hold:
    """A request the upstream keeps open: `arrived` when it is in, answered once `release` is set."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()


HOLDS: dict[str, Hold] = {}


async def hold(request: web.Request) -> web.Response:
    held = HOLDS.setdefault(request.query["id"], Hold())
    held.arrived.set()
    await asyncio.wait_for(held.release.wait(), 30)
    return web.json_response({"held": request.query["id"]})


async def live(request: web.Request) -> web.StreamResponse:
    if request.query.get("refuse"):
        return web.json_response({"error": {"code": "no", "message": "no", "details": []}}, status=403)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json(
        {"query": request.rel_url.raw_query_string, "subject": request.headers.get("X-Snapline-Subject")}
    )
    async for msg in ws:
        if msg.type is WSMsgType.TEXT and msg.data == "close":
            await ws.close(code=4000, message=b"bye")
        elif msg.type is WSMsgType.TEXT and msg.data.startswith("close:"):  # close:<code>:<reason>
            _, code, reason = msg.data.split(":", 2)
            await ws.close(code=int(code), message=reason.encode())
        elif msg.type is WSMsgType.TEXT and msg.data == "drop":
            assert request.transport is not None
            request.transport.abort()
        elif msg.type is WSMsgType.TEXT and msg.data.startswith("big:"):  # big:<bytes>: one large text frame
            await ws.send_str("x" * int(msg.data[4:]))
        elif msg.type is WSMsgType.TEXT:
            await ws.send_str("echo:" + msg.data)
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


def upstream_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/v1/plays/slow", slow)
    app.router.add_get("/v1/plays/hold", hold)
    app.router.add_get("/v1/imports/big", big)
    app.router.add_get("/v1/plays/big", big)  # a read answered in a stream (no Content-Length)
    app.router.add_get("/v1/live", live)
    app.router.add_get("/live/{game_id}", page)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
