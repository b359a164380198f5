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
from shared.redisline import RedisLine

log = get_logger(__name__)
RATE_LIMITED = Counter("snapline_gateway_rate_limited_total", "Requests refused by a rate limit", ["kind"])
RATE_LIMIT_ERRORS = Counter(
    "snapline_gateway_rate_limit_errors_total", "Requests let through unlimited because Redis did not answer"
)
_WARN_EVERY = 30.0

# KEYS: n limit keys, then keys to read. ARGV: n, then per limit: period ms, limit, cost.
# -> {allowed, limit, remaining, reset s, retry s} of the first limit (the worst retry of all),
#    the least remaining of all the limits, then the values of the keys read.
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
local out = {0, 0, 0, 0, 0, 0}
if n > 0 then
  local least = nil
  for i = n, 1, -1 do
    local period, limit = tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3])
    local used = (allowed and new[i] or old[i]) - now
    local remaining = math.floor((period - used) * limit / period)
    if remaining < 0 then remaining = 0 end
    if least == nil or remaining < least then least = remaining end
    if i == 1 then
      out = {allowed and 1 or 0, limit, remaining, math.ceil(used / 1000), math.ceil(retry / 1000), least}
    end
  end
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
    least: int = 0  # the fewest requests any of the request's limits has left after this one

    def headers(self) -> dict[str, str]:
        if not self.limit:
            return {}
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class Credit:
    """What this process last heard of each caller's budget, so a read may go upstream before its gate answers.

    Keyed by the set of limits a request charges (principal and client address). A caller is
    trusted ahead of its gate only while the least of those budgets, as of its last verdict and
    less what was spent on trust since, is at least `margin` requests: a caller near a limit, one
    never seen, or one last refused always waits for the gate. Its answer is still awaited before
    a single byte is relayed, so trust only ever spends upstream work, never a refusal or a
    revocation; and the overshoot is bounded by what is in flight at once (the upstream pool).
    """

    __slots__ = ("_left", "capacity", "margin")

    def __init__(self, margin: int = 16, capacity: int = 20_000) -> None:
        self.margin = margin
        self.capacity = capacity  # callers remembered; the oldest is forgotten first
        self._left: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._left)

    def spend(self, key: str, cost: int) -> bool:
        """Take `cost` on trust if the caller has the margin; False: wait for the gate."""
        left = self._left.get(key, 0)
        if left < self.margin * cost:
            return False
        self._left[key] = left - cost
        return True

    def heard(self, key: str, verdict: Verdict) -> None:
        """Remember a verdict's budget (a refusal forgets the caller: it waits from now on)."""
        self._left.pop(key, None)
        if verdict.allowed and verdict.least > 0:
            self._left[key] = verdict.least
            if len(self._left) > self.capacity:
                del self._left[next(iter(self._left))]


def credit_key(limits: Sequence[Limit]) -> str:
    return "\x1f".join(f"{lim.kind}:{lim.identity}" for lim in limits)


class RateLimiter:
    """Runs the gate script on the deployment's Redis under its key prefix."""

    def __init__(
        self, redis: Dependency[aioredis.Redis], prefix: str, budget: float, line: RedisLine
    ) -> None:
        self._redis = redis  # its state says whether Redis is up; the script goes over `line`
        self._line = line  # the gate's own pipelined connection
        self._prefix = prefix
        self.budget = budget  # seconds the gate may take before the request goes on without it
        self._warned_at = -math.inf
        self.credit = Credit()

    def __repr__(self) -> str:
        return f"RateLimiter(prefix={self._prefix!r})"

    async def gate(self, limits: list[Limit], reads: Sequence[str] = ()) -> Verdict:
        """Charge every limit (or none, when one refuses) and read `reads`; raises RedisError/Unavailable."""
        active = [lim for lim in limits if lim.per_minute > 0]
        keys = [f"{self._prefix}rl:{lim.kind}:{lim.identity}" for lim in active] + list(reads)
        args: list[int] = [len(active)]
        for lim in active:
            args += [60_000, lim.per_minute, lim.cost]
        self._redis.get()  # Unavailable while Redis is not connected: no attempt at all
        async with asyncio.timeout(self.budget):
            try:
                out = await self._line.call("EVALSHA", _SHA, len(keys), *keys, *args)
            except NoScriptError:
                out = await self._line.call("EVAL", _GATE, len(keys), *keys, *args)
        allowed, limit, remaining, reset, retry, least = (int(v) for v in out[:6])
        refused = None
        if active and not allowed:
            refused = active[0].kind
        verdict = Verdict(
            bool(allowed) or not active, limit, remaining, reset, max(1, retry), list(out[6:]), refused, least
        )
        if active:
            self.credit.heard(credit_key(active), verdict)
        return verdict

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
