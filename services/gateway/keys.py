"""The gateway's typed application and request keys, in one place."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from services.gateway.accounts import Principal
from services.gateway.keycache import KeyCache
from services.gateway.ratelimit import RateLimiter
from shared.db import Pools
from shared.deps import Dependency

POSTGRES = web.AppKey("postgres", Dependency[Pools])
REDIS = web.AppKey("redis", Dependency[aioredis.Redis])
CLIENT = web.AppKey("client", aiohttp.ClientSession)
# Tests shorten it to see a 504 quickly; nothing in Settings needs to tune it yet.
UPSTREAM_TIMEOUT = web.AppKey("upstream_timeout", aiohttp.ClientTimeout)
# Every Redis key the gateway writes starts with this, so one deployment (or one test) owns its keys.
REDIS_PREFIX = web.AppKey("redis_prefix", str)
API_KEY_CACHE = web.AppKey("api_key_cache", KeyCache)
# None on public routes.
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
