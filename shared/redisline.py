"""One pipelined Redis connection for a hot path: many callers, one socket, replies in order.

Redis answers a connection's commands in the order they came, so callers can share a single
connection: each writes its command at once and waits for the reply whose turn it is. There is no
pool to check a connection out of and nothing is built per call but the command's bytes
(hiredis packs them and parses the replies, in C). For the gateway's gate script this costs about
90 us of CPU a call against 230-250 us through redis-py's asyncio client (measured on this
machine), on every request the gateway serves. Everything else keeps using redis-py.

Waiting replies are bounded (`max_pending`, a setting): past it a caller waits for a slot, within
its own timeout. A lost connection fails every waiting call with redis' ConnectionError; the next
call connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import hiredis
from prometheus_client import Counter, Gauge
from redis.exceptions import AuthenticationError, ConnectionError, NoScriptError, ResponseError
from yarl import URL

PENDING = Gauge(
    "snapline_redis_pipeline_pending", "Commands written on a pipelined Redis connection, awaiting their reply",
    ["service", "line"],
)  # fmt: skip
PENDING_LIMIT = Gauge(
    "snapline_redis_pipeline_pending_limit", "Most replies a pipelined Redis connection awaits at once",
    ["service", "line"],
)  # fmt: skip
CONNECTS = Counter(
    "snapline_redis_pipeline_connects_total",
    "Connections made by a pipelined Redis line",
    ["service", "line"],
)


class _Wire(asyncio.Protocol):
    """The socket's side: writes go straight out, each parsed reply resolves the oldest waiter."""

    def __init__(self, line: RedisLine) -> None:
        self.line = line
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiters: deque[tuple[asyncio.Future[Any], bool]] = deque()  # (waiter, holds a slot)
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                self._resolve(reply)
        except hiredis.ProtocolError as exc:
            if self.transport is not None:
                self.transport.close()
            self._fail(ConnectionError(f"Redis sent something that is not RESP: {exc}"))

    def _resolve(self, reply: Any) -> None:
        waiter, counted = self.waiters.popleft()
        if counted:
            self.line.slot_free()
        if not waiter.done():  # a caller whose timeout passed has gone
            waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionError(f"the Redis connection was lost ({exc or 'closed by the server'})"))
        self.line.wire_lost(self)

    def _fail(self, error: Exception) -> None:
        while self.waiters:
            waiter, counted = self.waiters.popleft()
            if counted:
                self.line.slot_free()
            if not waiter.done():
                waiter.set_exception(error)

    def send(self, command: bytes, counted: bool = True) -> asyncio.Future[Any]:
        """Write `command`; the future gets its reply. `counted`: the caller holds one of the line's slots."""
        assert self.transport is not None
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters.append((waiter, counted))
        self.transport.write(command)
        return waiter


class RedisLine:
    """A pipelined connection to the Redis at `url` (redis://, rediss:// or unix://)."""

    def __init__(
        self, url: str, service: str, name: str, max_pending: int = 1024, connect_timeout: float = 3.0
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"a Redis line needs room for at least one reply, got {max_pending}")
        self._url = URL(url)
        if self._url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"REDIS_URL must be redis://, rediss:// or unix://, got {url!r}")
        self.name = name
        self.max_pending = max_pending
        self.connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(max_pending)
        self._pending = 0
        self._wire: _Wire | None = None
        self._connecting: asyncio.Task[_Wire] | None = None
        labels = (service, name)
        PENDING_LIMIT.labels(*labels).set(max_pending)
        PENDING.labels(*labels).set_function(lambda: self._pending)
        self._connects = CONNECTS.labels(*labels)

    def __repr__(self) -> str:
        return f"RedisLine({self.name!r}, connected={self._wire is not None})"

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply; an error reply is raised (ResponseError, NoScriptError)."""
        command = hiredis.pack_command(args)
        await self._slots.acquire()  # no suspension while a slot is free
        try:
            wire = self._wire
            if wire is None or wire.lost:
                wire = await self._connected()
        except BaseException:
            self._slots.release()
            raise
        self._pending += 1  # the wire frees the slot when the reply (or the connection's end) comes
        reply = await wire.send(command)
        if isinstance(reply, ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                raise NoScriptError(str(reply))
            raise reply
        return reply

    def slot_free(self) -> None:
        self._pending -= 1
        self._slots.release()

    def wire_lost(self, wire: _Wire) -> None:
        if self._wire is wire:
            self._wire = None

    async def _connected(self) -> _Wire:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Wire:
        loop = asyncio.get_running_loop()
        url = self._url
        try:
            async with asyncio.timeout(self.connect_timeout):
                if url.scheme == "unix":
                    _, wire = await loop.create_unix_connection(lambda: _Wire(self), url.path)
                else:
                    context = ssl.create_default_context() if url.scheme == "rediss" else None
                    _, wire = await loop.create_connection(
                        lambda: _Wire(self), url.host or "127.0.0.1", url.port or 6379, ssl=context
                    )
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to Redis at {url.host or url.path}: {exc}") from None
        self._connects.inc()
        try:
            if url.password is not None:
                credentials = (url.user, url.password) if url.user else (url.password,)
                await self._checked(wire, "AUTH", *credentials)
            db = url.query.get("db") or url.path.strip("/")
            if url.scheme != "unix" and db not in ("", "0"):
                await self._checked(wire, "SELECT", db)
            elif url.scheme == "unix" and url.query.get("db", "0") != "0":
                await self._checked(wire, "SELECT", url.query["db"])
        except BaseException:
            if wire.transport is not None:
                wire.transport.close()
            raise
        self._wire = wire
        return wire

    async def _checked(self, wire: _Wire, *args: Any) -> None:
        reply = await wire.send(hiredis.pack_command(args), counted=False)
        if isinstance(reply, ResponseError):
            raise AuthenticationError(str(reply)) if args[0] == "AUTH" else reply

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            wire.transport.close()
