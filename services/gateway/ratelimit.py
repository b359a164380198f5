"""Request limits: GCRA in one atomic Redis script, exact across every gateway process.

Each limit is a rate (`per_minute`) with a burst of the same size: a caller may spend a minute's
budget at once and then earns one request back every 60/per_minute seconds, so there is no window
edge at which twice the limit passes. One script call checks every limit that applies to a
request (the principal's, the client address's, sign-in's per-account one), charges them only if
all allow it, and reads the revocation keys the caller needs in the same round trip. The clock is
Redis's own (TIME), so the gateways' clocks do not matter.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import NoScriptError, RedisError

from shared.deps import Dependency, Unavailable
from shared.errors import ApiError
from shared.logging import get_logger

log = get_logger(__name__)
RATE_LIMITED = Counter("snapline_gateway_rate_limited_total", "Requests refused by a rate limit", ["kind"])
RATE_LIMIT_ERRORS = Counter(
    "snapline_gateway_rate_limit_errors_total", "Requests let through unlimited because Redis did not answer"
)
_WARN_EVERY = 30.0

# KEYS: n limit keys, then keys to read. ARGV: n, then per limit: period ms, limit, cost.
# -> {allowed, limit, remaining, reset s, retry s} of the first limit (the worst retry of all),
#    then the values of the keys read.
_GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local allowed, retry = true, 0
local new, old = {}, {}
for i = 1, n do
  local period, limit, cost = tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3]), tonumber(ARGV[i*3+1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  old[i] = tat
  new[i] = tat + cost * period / limit
  local over = new[i] - now - period
  if over > 0 then
    allowed = false
    if over > retry then retry = over end
  end
end
if allowed then
  for i = 1, n do
    if new[i] > old[i] then redis.call('SET', KEYS[i], tostring(new[i]), 'PX', math.ceil(new[i] - now)) end
  end
end
local out = {0, 0, 0, 0, 0}
if n > 0 then
  local period, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
  local used = (allowed and new[1] or old[1]) - now
  local remaining = math.floor((period - used) * limit / period)
  if remaining < 0 then remaining = 0 end
  out = {allowed and 1 or 0, limit, remaining, math.ceil(used / 1000), math.ceil(retry / 1000)}
end
for i = n + 1, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or false end
return out
"""
_SHA = hashlib.sha1(_GATE.encode()).hexdigest()


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests of `kind` for `identity`, charging `cost` for this request."""

    kind: str
    identity: str
    per_minute: int
    cost: int = 1


@dataclass(frozen=True)
class Verdict:
    """What the gate found: the headline limit's state and the values read."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int
    values: list[bytes | None]
    refused_kind: str | None = None

    def headers(self) -> dict[str, str]:
        if not self.limit:
            return {}
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Runs the gate script on the deployment's Redis under its key prefix."""

    def __init__(self, redis: Dependency[aioredis.Redis], prefix: str, budget: float = 0.5) -> None:
        self._redis = redis
        self._prefix = prefix
        self.budget = budget  # seconds the gate may take before the request goes on without it
        self._warned_at = -math.inf

    def __repr__(self) -> str:
        return f"RateLimiter(prefix={self._prefix!r})"

    async def gate(self, limits: list[Limit], reads: Sequence[str] = ()) -> Verdict:
        """Charge every limit (or none, when one refuses) and read `reads`; raises RedisError/Unavailable."""
        active = [lim for lim in limits if lim.per_minute > 0]
        keys = [f"{self._prefix}rl:{lim.kind}:{lim.identity}" for lim in active] + list(reads)
        args: list[int] = [len(active)]
        for lim in active:
            args += [60_000, lim.per_minute, lim.cost]
        redis = self._redis.get()
        async with asyncio.timeout(self.budget):
            try:
                out = await redis.evalsha(_SHA, len(keys), *keys, *args)
            except NoScriptError:
                out = await redis.eval(_GATE, len(keys), *keys, *args)
        allowed, limit, remaining, reset, retry = (int(v) for v in out[:5])
        refused = None
        if active and not allowed:
            refused = active[0].kind
        return Verdict(
            bool(allowed) or not active, limit, remaining, reset, max(1, retry), list(out[5:]), refused
        )

    def refusal(self, verdict: Verdict, what: str) -> ApiError:
        """The 429 for a refused verdict."""
        RATE_LIMITED.labels(verdict.refused_kind or "unknown").inc()
        return ApiError(
            429,
            "rate_limited",
            f"too many {what}; retry in {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after), **verdict.headers()},
        )

    def failed_open(self, exc: BaseException) -> None:
        """Count (and now and then log) a request let through because Redis did not answer."""
        RATE_LIMIT_ERRORS.inc()
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("rate_limit_unavailable", error=f"{type(exc).__name__}: {exc}", policy="fail_open")


REDIS_ERRORS = (Unavailable, RedisError, OSError, TimeoutError)
