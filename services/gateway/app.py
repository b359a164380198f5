"""create_app: the gateway application and its resources, one cleanup context each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from services.gateway.keycache import KeyCache
from services.gateway.keys import (
    API_KEY_CACHE,
    CLIENT,
    POSTGRES,
    RATE_LIMITER,
    REDIS,
    REDIS_PREFIX,
    UPSTREAM_TIMEOUT,
)
from services.gateway.ratelimit import RateLimiter
from services.gateway.routes import setup_routes
from shared.cache import redis_dependency
from shared.config import Settings
from shared.db import postgres_dependency
from shared.http import add_dependency, base_app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    # Encoded bodies pass through as they are (the client asked for them); no cookies are kept
    # between callers; the timeout bounds connecting and each read, never a whole long stream.
    session = aiohttp.ClientSession(
        timeout=app[UPSTREAM_TIMEOUT], auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    app[CLIENT] = session
    yield
    await session.close()


def create_app(settings: Settings) -> web.Application:
    """The gateway application; tests and `python -m services.gateway` alike build it here."""
    app = base_app(settings)
    add_dependency(app, POSTGRES, postgres_dependency(settings, migrations="services.gateway", max_size=5))
    add_dependency(app, REDIS, redis_dependency(settings))
    # The topic prefix names the deployment (or one test): the gateway's Redis keys share it.
    app[REDIS_PREFIX] = f"{settings.kafka.topic_prefix}:gateway:"
    app[UPSTREAM_TIMEOUT] = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120)
    app[API_KEY_CACHE] = KeyCache(ttl=30.0)
    app[RATE_LIMITER] = RateLimiter(app[REDIS], app[REDIS_PREFIX], settings.rate_limit_per_minute)
    app.cleanup_ctx.append(_client_session)
    setup_routes(app)
    return app
