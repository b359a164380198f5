"""create_app: the gateway application and its resources, one cleanup context each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from services.gateway import accounts, revocations
from services.gateway.audit import AuditLog
from services.gateway.auth import add_rate_headers
from services.gateway.keycache import KeyCache
from services.gateway.keys import (
    API_KEY_CACHE,
    AUDIT_LOG,
    KEYSET,
    LIVE_SPLICES,
    POSTGRES,
    RATE_LIMITER,
    REDIS,
    REDIS_PREFIX,
    TOKENS,
    UPSTREAM_POOLS,
    UPSTREAM_TIMEOUT,
)
from services.gateway.keyset import KeySet, KeySetError
from services.gateway.ratelimit import RateLimiter
from services.gateway.routes import setup_routes
from services.gateway.splice import Splices
from services.gateway.tokens import Tokens
from services.gateway.upstreams import Timeouts, open_pools
from shared.cache import redis_dependency
from shared.config import Settings
from shared.db import postgres_dependency
from shared.http import SETTINGS, add_background, add_dependency, base_app
from shared.logging import get_logger
from shared.redisline import RedisLine

log = get_logger(__name__)
KEYS_CHECK_EVERY = 10.0  # seconds between checks of the key file (rotation) and key last-use flushes


async def _upstream_pools(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pools = app[UPSTREAM_POOLS] = open_pools(
        settings.upstreams,
        settings.upstream_connections,
        settings.upstream_acquire_timeout,
        app[UPSTREAM_TIMEOUT],
    )
    yield
    for pool in pools.values():
        await pool.close()


async def _live_splices(app: web.Application) -> AsyncIterator[None]:
    yield
    # aiohttp no longer knows the spliced connections, so its own shutdown would not end them.
    app[LIVE_SPLICES].close_where(lambda _: True, 1001, "the gateway is shutting down")


async def _audit_writer(app: web.Application) -> AsyncIterator[None]:
    # After the PostgreSQL dependency, so torn down before it: the last records are written first.
    writer = asyncio.create_task(app[AUDIT_LOG].run(), name="gateway-audit")
    yield
    await app[AUDIT_LOG].close(writer)


def _no_keys() -> str:
    raise KeySetError(
        "JWT_KEYS_FILE is not set: the gateway signs access tokens with Ed25519 keys of this installation's "
        "own; create them with `python -m services.gateway.keyset ensure FILE` (make up does, under .local/)"
    )


async def _maintain_keys(app: web.Application) -> None:
    """Pick up a rotated key file; record which API keys were used (last_used_at)."""
    while True:
        await asyncio.sleep(KEYS_CHECK_EVERY)
        try:
            if app[KEYSET].reload():
                log.info("signing_keys_reloaded", kids=[k.kid for k in app[KEYSET].keys])
        except KeySetError as exc:
            log.error("signing_keys_unusable", error=str(exc))  # the keys already loaded stay in use
        used = app[API_KEY_CACHE].take_used()
        if used:
            await accounts.touch_keys(app[POSTGRES].get().primary, used)


def create_app(settings: Settings) -> web.Application:
    """The gateway application; tests and `python -m services.gateway` alike build it here."""
    app = base_app(settings)
    add_dependency(app, POSTGRES, postgres_dependency(settings, migrations="services.gateway", max_size=5))
    add_dependency(app, REDIS, redis_dependency(settings))
    # The topic prefix names the deployment (or one test): the gateway's Redis keys share it.
    app[REDIS_PREFIX] = f"{settings.kafka.topic_prefix}:gateway:"
    # The wait for a pooled connection is the pool's own (upstreams.py, acquire timeout).
    app[UPSTREAM_TIMEOUT] = Timeouts(settings.upstream_connect_timeout, settings.upstream_read_timeout)
    # Refuses to build without a key set of the installation's own (KeySetError says what to do).
    app[KEYSET] = KeySet(settings.jwt_keys_file or _no_keys(), development=settings.development)
    app[TOKENS] = Tokens(settings, app[KEYSET], app[REDIS_PREFIX])
    accounts.configure_hashing(settings.password_hash_concurrency)
    # Revocation reaches the cache through the keys' generation on every request; the TTL only
    # bounds how long an idle entry is kept.
    app[API_KEY_CACHE] = KeyCache(ttl=300.0)
    # The gate script runs on every request: on a pipelined connection of its own (shared/redisline.py).
    line = RedisLine(settings.redis_url, settings.service, "gate", settings.redis_pipeline_max_pending)
    app[RATE_LIMITER] = RateLimiter(app[REDIS], app[REDIS_PREFIX], settings.rate_limit_redis_budget, line)
    app.on_cleanup.append(lambda _: line.close())
    app[revocations.CLOSERS] = []
    app.on_response_prepare.append(add_rate_headers)
    add_background(app, "gateway-revocations", lambda: revocations.listen(app))
    add_background(app, "gateway-keys", lambda: _maintain_keys(app))
    app[AUDIT_LOG] = AuditLog(
        lambda: app[POSTGRES].get().primary,
        settings.audit_queue_size,
        settings.audit_batch,
        settings.audit_enqueue_timeout,
    )
    app.cleanup_ctx.append(_audit_writer)
    app[LIVE_SPLICES] = Splices()
    app[revocations.CLOSERS].append(app[LIVE_SPLICES].close_where)
    app.cleanup_ctx.append(_upstream_pools)
    app.cleanup_ctx.append(_live_splices)
    setup_routes(app)
    return app
