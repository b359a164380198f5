"""Redis client factory."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.config import Settings
from shared.deps import Dependency


async def _connect(url: str) -> aioredis.Redis:
    client = aioredis.Redis.from_url(
        url, decode_responses=False, health_check_interval=30, socket_connect_timeout=3
    )
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        raise
    return client


async def _close(client: aioredis.Redis) -> None:
    await client.aclose()


async def _ping(client: aioredis.Redis) -> object:
    return await client.ping()


def redis_dependency(settings: Settings) -> Dependency[aioredis.Redis]:
    """The service's Redis client, connected in the background."""
    return Dependency("redis", settings.service, lambda: _connect(settings.redis_url), _close, _ping)
