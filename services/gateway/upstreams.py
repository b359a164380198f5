"""REST connection pools, one per upstream service: keep-alive HTTP/1.1 over asyncio protocols.

Each pool holds at most `limit` connections, its callers wait for one at a bounded gate, and an
idle connection is reused newest first. Responses are parsed by httptools (llhttp, the parser of
Node.js, in C) as bytes arrive; a request head is one write. That is the whole of what the proxy
needs from an HTTP client: aiohttp's client did the same in about three times the CPU per request
(measured on this machine: 200-250 us against 60 us), which was most of what the gateway added
to a call.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httptools
from multidict import CIMultiDict
from yarl import URL

from services.gateway.metrics import (
    POOL_ACQUIRE,
    POOL_CONNECTS,
    POOL_IN_USE,
    POOL_LIMIT,
    POOL_OPEN,
    POOL_REJECTED,
    POOL_WAITERS,
)
from shared.errors import ApiError

# A connection reading ahead of its consumer stops reading past this many buffered body bytes.
HIGH_WATER = 256 * 1024
IDLE_SECONDS = 15.0  # an idle connection older than this is closed, well inside servers' keep-alive
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamError(Exception):
    """The upstream could not be used for this request."""


class Unreachable(UpstreamError):
    """No connection could be made."""


class Timeout(UpstreamError):
    """Connecting, or a read, took longer than its timeout."""


class Broken(UpstreamError):
    """The connection ended or the upstream answered something that is not HTTP/1.1."""


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float  # between reads, never a whole long stream


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes requests, parses one response at a time."""

    __slots__ = (
        "_body_waiter", "_drain", "_head", "_parser", "_reading_paused", "buffered", "chunks", "closed",
        "complete", "error", "headers", "idle_since", "keep_alive", "pool", "reason", "status", "transport",
    )  # fmt: skip

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[None] | None = None
        self._body_waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers: list[tuple[str, str]] = []
        self.status = 0
        self.reason = ""
        self.complete = False
        self.keep_alive = False
        self.closed = False
        self.error: UpstreamError | None = None
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(Broken("the upstream switched protocols on a REST request"))
        except httptools.HttpParserError as exc:
            self._fail(Broken(f"the upstream's answer is not valid HTTP/1.1: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.pool.lost(self)
        if not self.complete and self.status and self._until_close():
            self.complete = True  # an answer with neither a length nor chunks ends with its connection
        if not self.complete and self.error is None:
            self.error = Broken(f"the upstream closed the connection ({exc or 'end of stream'})")
        self._wake()
        self.resume_writing()  # a writer waiting to drain sees `error`

    def _until_close(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return "content-length" not in names and "transfer-encoding" not in names

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.headers = []

    def on_status(self, reason: bytes) -> None:
        self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer; the final one follows
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()  # llhttp forgets it once the message ends
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            return
        self.complete = True
        self._wake()

    # the request side

    def _fail(self, error: UpstreamError) -> None:
        self.error = error
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        for waiter in (self._head, self._body_waiter):
            if waiter is not None and not waiter.done():
                if self.error is not None and (waiter is self._body_waiter or self.status == 0):
                    waiter.set_exception(self.error)
                else:
                    waiter.set_result(None)

    def start(self, head: bytes) -> None:
        """Reset the response state and write a request head (and any body already in it)."""
        assert self.transport is not None
        self.status, self.reason, self.headers, self.complete, self.keep_alive = 0, "", [], False, False
        self.chunks.clear()
        self.buffered = 0
        self._head = asyncio.get_running_loop().create_future()
        self.transport.write(head)

    async def write(self, data: bytes, wait: float) -> None:
        """Write request body bytes, waiting (at most `wait` seconds) while the upstream's buffer is full."""
        if self.error is not None:
            raise self.error
        assert self.transport is not None
        self.transport.write(data)
        if self._drain is not None and not self._drain.done():
            try:
                async with asyncio.timeout(wait):
                    await self._drain
            except TimeoutError:
                raise Timeout(f"the upstream read none of the body for {wait:g} s") from None
            if self.error is not None:
                raise self.error

    async def head(self, wait: float) -> None:
        """Wait (at most `wait` seconds) for the response's status line and headers."""
        assert self._head is not None
        if not self._head.done():
            try:
                async with asyncio.timeout(wait):
                    await self._head
            except TimeoutError:
                raise Timeout(f"no answer within {wait:g} s") from None
        elif self._head.exception() is not None:
            raise self._head.exception()  # type: ignore[misc]

    async def chunk(self, wait: float) -> bytes | None:
        """The next body bytes as they arrived (waiting at most `wait` seconds); None at the end."""
        while not self.chunks:
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self._body_waiter = asyncio.get_running_loop().create_future()
            if self._reading_paused and self.transport is not None:
                self.transport.resume_reading()
                self._reading_paused = False
            try:
                async with asyncio.timeout(wait):
                    await self._body_waiter
            except TimeoutError:
                raise Timeout(f"no body bytes within {wait:g} s") from None
            finally:
                self._body_waiter = None
        data = self.chunks.popleft()
        self.buffered -= len(data)
        if self._reading_paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return data

    def reusable(self) -> bool:
        return (
            self.complete
            and self.error is None
            and self.transport is not None
            and not self.transport.is_closing()
            and self.keep_alive
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """An upstream's answer: status, headers, and the body read whole or chunk by chunk."""

    __slots__ = ("_conn", "_timeout", "content_length", "headers", "reason", "status")

    def __init__(self, conn: _Connection, timeout: float, head_only: bool) -> None:
        self._conn = conn
        self._timeout = timeout
        self.status = conn.status
        self.reason = conn.reason
        self.headers: CIMultiDict[str] = CIMultiDict(conn.headers)
        length = self.headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        if head_only:
            # A HEAD answer has no body whatever its length says, and llhttp would wait for one:
            # the answer is complete here and the connection is not reused.
            conn.complete = True
            conn.close()

    async def read(self) -> bytes:
        parts = []
        while (chunk := await self._conn.chunk(self._timeout)) is not None:
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._conn.chunk(self._timeout)) is not None:
            yield chunk


def _head(
    method: str, target: str, host: str, headers: Mapping[str, str], length: int | None, body: bool
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ApiError(400, "bad_request", f"the {name} header must not contain line breaks")
        lines.append(f"{name}: {value}\r\n")
    if length is not None:
        lines.append(f"Content-Length: {length}\r\n")
    elif body:
        lines.append("Transfer-Encoding: chunked\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class UpstreamPool:
    """One upstream's connections and the gate that bounds them.

    The gate admits as many requests as the pool holds connections; the wait happens there,
    bounded, counted and answered with a 503.
    """

    __slots__ = (
        "_acquired", "_connects", "_gate", "_idle", "_in_use", "_in_use_gauge", "_open", "_open_gauge", "_ssl",
        "_waiting", "acquire_timeout", "host", "hostport", "limit", "name", "port", "timeouts",
    )  # fmt: skip

    def __init__(self, name: str, url: str, limit: int, acquire_timeout: float, timeouts: Timeouts) -> None:
        if limit < 1:
            raise ValueError(f"GATEWAY_UPSTREAM_CONNECTIONS must be at least 1, got {limit}")
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the {name} service's URL must be http:// or https://, got {url!r}")
        self.name = name
        self.host = parsed.host
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.hostport = f"{self.host}:{self.port}"
        self._ssl = ssl.create_default_context() if parsed.scheme == "https" else None
        self.limit = limit
        self.acquire_timeout = acquire_timeout
        self.timeouts = timeouts
        self._gate = asyncio.Semaphore(limit)
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._waiting = 0
        self._in_use = 0
        POOL_LIMIT.labels(name).set(limit)
        # Bound once: each request touches these, and a labelled lookup takes a lock every time.
        self._acquired = POOL_ACQUIRE.labels(name)
        self._in_use_gauge = POOL_IN_USE.labels(name)
        self._open_gauge = POOL_OPEN.labels(name)
        self._connects = POOL_CONNECTS.labels(name)

    def __repr__(self) -> str:
        return (
            f"UpstreamPool({self.name!r}, in_use={self._in_use}/{self.limit}, idle={len(self._idle)}, "
            f"waiting={self._waiting})"
        )

    @asynccontextmanager
    async def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: AsyncIterator[bytes] | None = None,
        length: int | None = None,
    ) -> AsyncIterator[UpstreamResponse]:
        """Send one request (`target`: the encoded path and query) and hold its connection until the
        block ends: the answer's head is in, its body is read inside the block. UpstreamError when
        the upstream cannot be used; ApiError 503 when no connection frees up in time."""
        started = time.perf_counter()
        if self._gate.locked():
            await self._wait()
        else:
            await self._gate.acquire()  # free now: no suspension, no timer
        self._acquired.observe(time.perf_counter() - started)
        self._in_use += 1
        self._in_use_gauge.inc()
        conn: _Connection | None = None
        try:
            head = _head(method, target, self.hostport, headers, length, body is not None)
            conn = await self._send(method, head, body, length is None)
            response = UpstreamResponse(conn, self.timeouts.read, method == "HEAD")
            yield response
        finally:
            self._in_use -= 1
            self._in_use_gauge.dec()
            if conn is not None:
                if conn.reusable() and not conn.chunks:
                    conn.idle_since = time.monotonic()
                    self._idle.append(conn)
                else:
                    conn.close()
            self._gate.release()

    async def _send(
        self, method: str, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool
    ) -> _Connection:
        conn = self._take_idle()
        if conn is not None and body is None and method in IDEMPOTENT:
            try:
                conn.start(head)
                await conn.head(self.timeouts.read)
                return conn
            except Broken:
                # The upstream closed this idle connection as it was reused: once more on a new one.
                conn.close()
                conn = None
            except BaseException:
                conn.close()  # a timeout or a cancellation: the connection is mid-answer, never reused
                raise
        if conn is None:
            conn = await self._connect()
        try:
            conn.start(head)
            if body is not None:
                await self._write_body(conn, body, chunked)
            await conn.head(self.timeouts.read)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _write_body(self, conn: _Connection, body: AsyncIterator[bytes], chunked: bool) -> None:
        wait = self.timeouts.read
        async for chunk in body:
            if chunk:
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk, wait)
        if chunked:
            await conn.write(b"0\r\n\r\n", wait)

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable() and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeouts.connect):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self._ssl
                )
        except TimeoutError:
            raise Timeout(f"no connection within {self.timeouts.connect:g} s") from None
        except OSError as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None
        self._open.add(conn)
        self._open_gauge.inc()
        self._connects.inc()
        return conn

    def lost(self, conn: _Connection) -> None:
        """A connection ended (either side closed it)."""
        if conn in self._open:
            self._open.discard(conn)
            self._open_gauge.dec()
        if conn in self._idle:
            self._idle.remove(conn)

    async def _wait(self) -> None:
        self._waiting += 1
        POOL_WAITERS.labels(self.name).inc()
        try:
            async with asyncio.timeout(self.acquire_timeout):
                await self._gate.acquire()
        except TimeoutError:
            POOL_REJECTED.labels(self.name).inc()
            raise ApiError(
                503, "upstream_busy",
                f"all {self.limit} connections to the {self.name} service are in use; retry shortly",
                headers={"Retry-After": "1"},
            ) from None  # fmt: skip
        finally:
            self._waiting -= 1
            POOL_WAITERS.labels(self.name).dec()

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost


def open_pools(
    names: Mapping[str, str], limit: int, acquire_timeout: float, timeouts: Timeouts
) -> dict[str, UpstreamPool]:
    """A pool for each configured upstream."""
    return {
        name: UpstreamPool(name, url, limit, acquire_timeout, timeouts) for name, url in names.items() if url
    }
