"""REST connection pools, one per upstream service, each with a bounded wait for a connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from services.gateway.metrics import POOL_ACQUIRE, POOL_IN_USE, POOL_LIMIT, POOL_REJECTED, POOL_WAITERS
from shared.errors import ApiError


class UpstreamPool:
    """One upstream's ClientSession and the gate that keeps callers from queueing inside aiohttp.

    The gate admits as many requests as the connector holds connections, so aiohttp itself never
    waits for one; the wait happens here, where it is bounded, counted and answered with a 503.
    """

    __slots__ = (
        "_acquired", "_gate", "_in_use", "_in_use_gauge", "_waiting", "acquire_timeout", "limit", "name", "session",
    )  # fmt: skip

    def __init__(self, name: str, limit: int, acquire_timeout: float, timeout: aiohttp.ClientTimeout) -> None:
        if limit < 1:
            raise ValueError(f"GATEWAY_UPSTREAM_CONNECTIONS must be at least 1, got {limit}")
        self.name = name
        self.limit = limit
        self.acquire_timeout = acquire_timeout
        # Encoded bodies pass through as they are (the client asked for them); no cookies are kept
        # between callers; the timeout bounds connecting and each read, never a whole long stream.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
            timeout=timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._gate = asyncio.Semaphore(limit)
        self._waiting = 0
        self._in_use = 0
        POOL_LIMIT.labels(name).set(limit)
        # Bound once: each request touches these, and a labelled lookup takes a lock every time.
        self._acquired = POOL_ACQUIRE.labels(name)
        self._in_use_gauge = POOL_IN_USE.labels(name)

    def __repr__(self) -> str:
        return f"UpstreamPool({self.name!r}, in_use={self._in_use}/{self.limit}, waiting={self._waiting})"

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiohttp.ClientSession]:
        """Hold one of the pool's connections for a whole request, body included; 503 when none frees up."""
        started = time.perf_counter()
        if self._gate.locked():
            await self._wait()
        else:
            await self._gate.acquire()  # free now: no suspension, no timer
        self._acquired.observe(time.perf_counter() - started)
        self._in_use += 1
        self._in_use_gauge.inc()
        try:
            yield self.session
        finally:
            self._in_use -= 1
            self._in_use_gauge.dec()
            self._gate.release()

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
        await self.session.close()


def open_pools(
    names: Mapping[str, str], limit: int, acquire_timeout: float, timeout: aiohttp.ClientTimeout
) -> dict[str, UpstreamPool]:
    """A pool for each configured upstream."""
    return {name: UpstreamPool(name, limit, acquire_timeout, timeout) for name, url in names.items() if url}
