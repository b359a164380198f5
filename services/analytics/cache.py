"""Read-through Redis cache of analytics answers, invalidated by a generation counter.

Every batch that changes the aggregates bumps the generation, so a cached answer is never
older than the last applied batch; entries of older generations simply expire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from prometheus_client import Counter

from shared.deps import Dependency
from shared.logging import get_logger

log = get_logger(__name__)
CACHE = Counter("snapline_analytics_cache_total", "Analytics cache lookups", ["outcome"])
TTL_SECONDS = 300
_json = msgspec.json.Encoder()


class AnswerCache:
    """Caches JSON answers in Redis under the current generation; a Redis outage only costs speed."""

    def __init__(self, redis: Dependency[Any], prefix: str) -> None:
        self._redis = redis
        self._gen_key = f"{prefix}:analytics:gen"
        self._prefix = f"{prefix}:analytics:answer"

    def __repr__(self) -> str:
        return f"AnswerCache({self._prefix!r})"

    async def bump(self) -> None:
        """Invalidate every cached answer (called after each applied batch)."""
        try:
            await self._redis.get().incr(self._gen_key)
        except Exception as exc:  # answers then live at most TTL_SECONDS longer
            log.warning("cache_invalidation_failed", error=str(exc))

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[Any]]) -> bytes:
        try:
            redis = self._redis.get()
            gen = int(await redis.get(self._gen_key) or 0)
            cache_key = f"{self._prefix}:{gen}:{key}"
            hit = await redis.get(cache_key)
        except Exception as exc:  # cache down: answer from PostgreSQL
            log.warning("cache_unavailable", error=str(exc))
            CACHE.labels("error").inc()
            return _json.encode(await compute())
        if hit is not None:
            CACHE.labels("hit").inc()
            return bytes(hit)
        CACHE.labels("miss").inc()
        body = _json.encode(await compute())
        await redis.set(cache_key, body, ex=TTL_SECONDS)
        return body
