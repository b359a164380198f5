"""GET /v1/live: after authentication, the viewer's connection is spliced to one on the live service.

The gateway sends live the upgrade request itself (identity and trace headers, no token) on a
raw TCP connection; only when live answers 101 does the client get that 101, after which the
bytes flow both ways through a Splice and aiohttp lets go of the connection. A live service
that is down or refuses is a JSON error before any upgrade.
"""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web
from yarl import URL

from services.gateway.keys import LIVE_SPLICES, PRINCIPAL
from services.gateway.proxy import upstream_headers, upstream_url
from services.gateway.splice import LiveSide, Splice
from shared.errors import ApiError
from shared.http import SETTINGS
from shared.logging import get_logger

log = get_logger(__name__)
# The handshake is end to end: live answers the client's key, protocols and extensions itself.
HANDSHAKE_HEADERS = ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                     "Sec-WebSocket-Extensions", "Origin", "User-Agent")  # fmt: skip
ANSWER_HEADERS = ("Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                  "Sec-WebSocket-Extensions")  # fmt: skip


def _unavailable(exc: BaseException) -> ApiError:
    log.warning("upstream_unreachable", upstream="live", error=f"{type(exc).__name__}: {exc}")
    return ApiError(
        503, "upstream_unavailable", "the live service is not reachable; retry shortly",
        headers={"Retry-After": "2"},
    )  # fmt: skip


def _upgrade_request(request: web.Request, url: URL, headers: dict[str, str]) -> bytes:
    headers = dict(headers)
    headers.update((h, request.headers[h]) for h in HANDSHAKE_HEADERS if h in request.headers)
    headers.update({"Host": url.raw_authority, "Upgrade": "websocket", "Connection": "Upgrade"})
    if any("\r" in v or "\n" in v for v in headers.values()):  # aiohttp's parser refuses them already
        raise ApiError(400, "bad_request", "a header value holds a line break")
    lines = [f"GET {url.raw_path_qs} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (by lower-case name) and the bytes after the head of live's handshake answer."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ApiError(502, "bad_gateway", "the live service sent an unreadable handshake answer")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ApiError(502, "bad_gateway", "the live service sent an unreadable handshake answer")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


async def _connect(url: URL) -> tuple[asyncio.Transport, LiveSide]:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if url.scheme in ("https", "wss") else None
    port = url.port or (443 if context else 80)
    transport, side = await loop.create_connection(
        lambda: LiveSide(loop), url.raw_host or "", port, ssl=context
    )
    return transport, side


def _take_over(request: web.Request) -> tuple[asyncio.Transport, bytes] | None:
    """The client's transport, detached from aiohttp, and what the client sent past its upgrade request.

    aiohttp keeps bytes read after an upgrade request in `_message_tail` until a WebSocket parser
    is set; no parser is ever set here. Clearing the handler's transport before telling it the
    connection is gone makes it drop the connection from its books (manager, keep-alive timer,
    parser) without closing or writing anything more: the socket now belongs to the Splice.
    """
    handler = request.protocol
    transport = handler.transport
    if transport is None or transport.is_closing():
        return None
    tail = handler._message_tail
    handler._message_tail = b""
    handler.transport = None
    handler.connection_lost(None)
    return transport, tail


async def live_socket(request: web.Request) -> web.StreamResponse:
    """Splice the viewer to the live service; a live service that is down is a JSON 503, not a dead socket."""
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise ApiError(
            426, "upgrade_required", "GET /v1/live is a WebSocket: send an Upgrade: websocket request"
        )
    principal = request[PRINCIPAL]
    assert principal is not None, "GET /v1/live is guarded"
    # The token may ride in the query string; the live service needs the caller, not the token.
    url = upstream_url(request, "live")
    url = url.with_query({k: v for k, v in url.query.items() if k != "access_token"})
    headers = upstream_headers(request)
    seconds = request.app[SETTINGS].upstream_connect_timeout
    try:
        async with asyncio.timeout(seconds):
            live, side = await _connect(url)
    except (OSError, TimeoutError) as exc:
        raise _unavailable(exc) from None
    try:
        live.write(_upgrade_request(request, url, headers))
        assert side.handshake is not None
        try:
            async with asyncio.timeout(seconds):
                status, answer_headers, live_tail = _parse_answer(await side.handshake)
        except (OSError, TimeoutError) as exc:
            raise _unavailable(exc) from None
        if status != 101:
            raise ApiError(502, "bad_gateway", f"the live service refused the WebSocket ({status})")
        answer = web.StreamResponse(status=101)
        answer.headers.update(
            (h, answer_headers[h.lower()]) for h in ANSWER_HEADERS if h.lower() in answer_headers
        )
        answer.headers["X-Request-ID"] = headers["X-Request-ID"]
        answer.force_close()
        await answer.prepare(request)
        await answer.write_eof()
        taken = _take_over(request)
    except BaseException:
        live.close()
        raise
    if taken is None:  # the client left during the handshake
        live.close()
        return answer
    client, client_tail = taken
    splice = Splice(request.app[LIVE_SPLICES], principal, client, live)
    side.attach(splice)
    splice.start(client_tail, live_tail)
    return answer
