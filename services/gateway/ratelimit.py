"""Per-principal (or per-address) request limits: a fixed one-minute window counted in Redis."""

from __future__ import annotations

import asyncio
import math
import time

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from shared.deps import Dependency, Unavailable
from shared.errors import ApiError
from shared.logging import get_logger

log = get_logger(__name__)
RATE_LIMITED = Counter("snapline_gateway_rate_limited_total", "Requests refused by the rate limit", ["kind"])
RATE_LIMIT_ERRORS = Counter(
    "snapline_gateway_rate_limit_errors_total", "Requests let through because Redis did not answer"
)
_REDIS_BUDGET = 0.5  # seconds; a slow Redis must not slow every request down
_WARN_EVERY = 30.0


class RateLimiter:
    """Counts requests per identity and minute; refuses the ones over `per_minute` with 429."""

    def __init__(self, redis: Dependency[aioredis.Redis], prefix: str, per_minute: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.per_minute = per_minute
        self._warned_at = -math.inf

    def __repr__(self) -> str:
        return f"RateLimiter(per_minute={self.per_minute}, prefix={self._prefix!r})"

    async def hit(self, identity: str) -> None:
        """Count one request of `identity`; ApiError 429 when it is over the limit."""
        if self.per_minute <= 0:
            return
        now = time.time()
        window = int(now // 60)
        try:
            count = await asyncio.wait_for(self._count(f"{identity}:{window}"), _REDIS_BUDGET)
        except (Unavailable, RedisError, OSError, TimeoutError) as exc:
            # Fail open: a Redis outage must not take the whole API down with it.
            self._warn(exc)
            return
        if count > self.per_minute:
            kind = identity.split(":", 1)[0]
            RATE_LIMITED.labels(kind).inc()
            retry_after = max(1, math.ceil((window + 1) * 60 - now))
            raise ApiError(
                429,
                "rate_limited",
                f"more than {self.per_minute} requests a minute; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    async def _count(self, suffix: str) -> int:
        key = f"{self._prefix}ratelimit:{suffix}"
        async with self._redis.get().pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count)

    def _warn(self, exc: BaseException) -> None:
        RATE_LIMIT_ERRORS.inc()
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("rate_limit_unavailable", error=f"{type(exc).__name__}: {exc}", policy="fail_open")
