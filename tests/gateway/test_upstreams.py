"""The gateway's upstream client (services/gateway/upstreams.py) against real servers, polite and not."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from services.gateway.upstreams import Broken, Timeout, Timeouts, Unreachable, UpstreamPool
from shared.errors import ApiError
from tests.gateway.upstream import upstream_app

# A raw server's answer to one request head: (bytes to write, close afterwards), or None: close unanswered.
Serve = Callable[[bytes], Awaitable[tuple[bytes, bool] | None]]


def _connects(name: str) -> float:
    return REGISTRY.get_sample_value("snapline_gateway_upstream_connects_total", {"upstream": name}) or 0.0


@pytest.fixture
async def aiohttp_upstream() -> AsyncIterator[str]:
    """The stand-in upstream (tests/gateway/upstream.py) on a real socket; its base URL."""
    server = TestServer(upstream_app())
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Serve], Awaitable[str]]]:
    """A TCP server answering each request on a connection with whatever the test's `serve` returns."""
    servers: list[asyncio.Server] = []

    async def start(serve: Serve) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    answer = await serve(head)
                    if answer is None:
                        break
                    writer.write(answer[0])
                    await writer.drain()
                    if answer[1]:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _pool(url: str, name: str, limit: int = 4, read: float = 5.0) -> UpstreamPool:
    return UpstreamPool(name, url, limit, 2.0, Timeouts(2.0, read))


async def _get(pool: UpstreamPool, target: str, method: str = "GET") -> tuple[int, bytes]:
    async with pool.request(method, target, {"Accept": "application/json"}) as resp:
        return resp.status, await resp.read()


async def test_keep_alive_connections_are_reused_and_answers_never_cross(
    aiohttp_upstream: str, unique: str
) -> None:
    pool = _pool(aiohttp_upstream, f"reuse-{unique}")
    try:
        for i in range(30):
            status, body = await _get(pool, f"/v1/plays/seq{i}?i={i}")
            assert status == 200 and json.loads(body)["path"] == f"/v1/plays/seq{i}"
        assert _connects(f"reuse-{unique}") == 1
        # 40 at once over at most 4 connections: each caller gets the answer to its own request.
        got = await asyncio.gather(*(_get(pool, f"/v1/plays/c{i}?n={i}") for i in range(40)))
        for i, (status, body) in enumerate(got):
            assert status == 200 and json.loads(body)["query"] == f"n={i}"
        assert _connects(f"reuse-{unique}") <= 4
    finally:
        await pool.close()


async def test_bodies_go_up_chunked_or_with_their_length_and_come_back_streamed(
    aiohttp_upstream: str, unique: str
) -> None:
    pool = _pool(aiohttp_upstream, f"bodies-{unique}")
    payload = bytes(range(256)) * 8192  # 2 MiB

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    try:
        for length in (None, len(payload)):
            async with pool.request("POST", "/v1/events", {}, chunks(), length) as resp:
                seen = await resp.read()
            assert resp.status == 200
            assert json.loads(seen)["sha256"] == hashlib.sha256(payload).hexdigest()
        # An answer of unknown length (chunked) read as it comes, past the read-ahead limit.
        async with pool.request("GET", "/v1/plays/big", {}) as resp:
            assert resp.content_length is None
            parts = [chunk async for chunk in resp.iter_chunks()]
        lines = b"".join(parts).splitlines()
        assert len(lines) == 2000 and lines[-1].startswith(b'{"line": 1999')
        assert (await _get(pool, "/v1/plays/after"))[0] == 200  # the connection is still good
    finally:
        await pool.close()


async def test_head_has_no_body_and_the_pool_goes_on(aiohttp_upstream: str, unique: str) -> None:
    pool = _pool(aiohttp_upstream, f"head-{unique}")
    try:
        assert await _get(pool, "/v1/plays/x", "HEAD") == (200, b"")
        assert (await _get(pool, "/v1/plays/y"))[0] == 200
    finally:
        await pool.close()


async def test_an_idle_connection_the_server_dropped_is_retried_for_reads(raw_server, unique: str) -> None:  # type: ignore[no-untyped-def]
    answered: list[bytes] = []

    async def serve(head: bytes) -> tuple[bytes, bool] | None:
        if answered and answered[-1] == b"/first":
            answered.append(b"dropped")
            return None  # the keep-alive connection's second request: closed unanswered
        answered.append(head.split(b" ")[1])
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False

    url = await raw_server(serve)
    pool = _pool(url, f"retry-{unique}")
    try:
        assert await _get(pool, "/first") == (200, b"ok")
        assert await _get(pool, "/fresh") == (200, b"ok")  # written twice: the dropped one, then anew
        assert answered == [b"/first", b"dropped", b"/fresh"]
        assert _connects(f"retry-{unique}") == 2
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("answer", "close", "message"),
    [
        (b"HELLO\r\n\r\n", False, "not valid HTTP"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", True, "closed the connection"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", False,
         "switched protocols"),
    ],
)  # fmt: skip
async def test_broken_answers_are_errors_not_hangs(  # type: ignore[no-untyped-def]
    raw_server, unique: str, answer: bytes, close: bool, message: str
) -> None:
    async def serve(_: bytes) -> tuple[bytes, bool]:
        return answer, close

    pool = _pool(await raw_server(serve), f"broken-{unique}", read=2.0)
    try:
        with pytest.raises(Broken, match=message):
            async with asyncio.timeout(5):
                await _get(pool, "/x")
    finally:
        await pool.close()


async def test_an_answer_delimited_by_the_connections_end_is_complete(raw_server, unique: str) -> None:  # type: ignore[no-untyped-def]
    async def serve(_: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", True

    pool = _pool(await raw_server(serve), f"eof-{unique}")
    try:
        assert await _get(pool, "/x") == (200, b"all of it")
        assert await _get(pool, "/y") == (200, b"all of it")  # on a new connection
        assert _connects(f"eof-{unique}") == 2
    finally:
        await pool.close()


async def test_a_timeout_on_a_reused_connection_closes_it(raw_server, unique: str) -> None:  # type: ignore[no-untyped-def]
    async def serve(head: bytes) -> tuple[bytes, bool] | None:
        if head.startswith(b"GET /slow"):
            await asyncio.sleep(30)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False

    name = f"timeout-{unique}"
    pool = _pool(await raw_server(serve), name, read=0.2)
    open_now = lambda: REGISTRY.get_sample_value(  # noqa: E731
        "snapline_gateway_upstream_connections_open", {"upstream": name}
    )
    try:
        assert await _get(pool, "/first") == (200, b"ok")
        with pytest.raises(Timeout):
            await _get(pool, "/slow")  # on the kept connection
        await asyncio.sleep(0.05)
        assert open_now() == 0  # closed, not left waiting for its answer
        assert await _get(pool, "/after") == (200, b"ok")
        assert _connects(name) == 2
    finally:
        await pool.close()


async def test_refused_silent_and_injected_requests(raw_server, unique: str) -> None:  # type: ignore[no-untyped-def]
    refused = _pool("http://127.0.0.1:1", f"refused-{unique}")
    with pytest.raises(Unreachable):
        await _get(refused, "/x")

    async def never(_: bytes) -> tuple[bytes, bool] | None:
        await asyncio.sleep(30)
        return None

    silent = _pool(await raw_server(never), f"silent-{unique}", read=0.2)
    try:
        with pytest.raises(Timeout, match=r"no answer within 0\.2 s"):
            await _get(silent, "/x")
        with pytest.raises(ApiError) as caught:
            async with silent.request("GET", "/x", {"Accept": "a\r\nX-Injected: 1"}):
                pass
        assert caught.value.status == 400
    finally:
        await silent.close()
    with pytest.raises(ValueError, match="http:// or https://"):
        UpstreamPool("bad", "ftp://127.0.0.1:21", 1, 1.0, Timeouts(1.0, 1.0))
