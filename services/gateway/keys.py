"""The gateway's typed application and request keys, in one place."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiohttp import web

from services.gateway.accounts import Principal
from services.gateway.audit import AuditLog
from services.gateway.keycache import KeyCache
from services.gateway.keyset import KeySet
from services.gateway.ratelimit import RateLimiter, Verdict
from services.gateway.splice import Splices
from services.gateway.tokens import Tokens
from services.gateway.upstreams import Timeouts, UpstreamPool
from shared.db import Pools
from shared.deps import Dependency

POSTGRES = web.AppKey("postgres", Dependency[Pools])
REDIS = web.AppKey("redis", Dependency[aioredis.Redis])
# One REST pool per upstream service; /v1/live never uses them (it is spliced, see live.py).
UPSTREAM_POOLS = web.AppKey("upstream_pools", dict[str, UpstreamPool])
# Built from the GATEWAY_UPSTREAM_*_TIMEOUT settings; tests shorten it to see a 504 quickly.
UPSTREAM_TIMEOUT = web.AppKey("upstream_timeout", Timeouts)
# Every Redis key the gateway writes starts with this, so one deployment (or one test) owns its keys.
REDIS_PREFIX = web.AppKey("redis_prefix", str)
API_KEY_CACHE = web.AppKey("api_key_cache", KeyCache)
KEYSET = web.AppKey("keyset", KeySet)
TOKENS = web.AppKey("tokens", Tokens)
# None on public routes.
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
# The rate-limit verdict of the request, for its RateLimit-* headers.
VERDICT: web.RequestKey[Verdict] = web.RequestKey("verdict")
# A speculative read's gate and revocation check, running while it is forwarded (auth.check).
ADMISSION: web.RequestKey[asyncio.Task[Principal | None]] = web.RequestKey("admission")
# The upstream's X-Snapline-Summary of a write (what it changed), for the audit log.
UPSTREAM_SUMMARY: web.RequestKey[str] = web.RequestKey("upstream_summary")
AUDIT_LOG = web.AppKey("audit_log", AuditLog)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# The spliced /v1/live connections: close_where(predicate, code, reason) ends them by principal.
LIVE_SPLICES = web.AppKey("live_splices", Splices)
