"""Fixtures of the live tests: settings, a producer, running app instances and Redis clean-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer

from services.live.app import create_app
from services.live.options import LiveOptions
from shared.config import Settings
from shared.kafka import make_producer

StartLive = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def live_settings(topics: Settings, make_settings: Callable[..., Settings]) -> Settings:
    """Settings of a live instance on this test's topics and consumer group."""
    return make_settings("live")


@pytest.fixture
async def redis(live_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client; removes every key under the test's prefix afterwards."""
    client = aioredis.Redis.from_url(live_settings.redis_url)
    yield client
    async for key in client.scan_iter(match=f"{live_settings.kafka.topic_prefix}:*", count=500):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def producer(live_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(live_settings.kafka, "test-live")
    await producer.start()
    yield producer
    await producer.stop()


async def wait_ready(client: TestClient[Any, Any], seconds: float = 20.0) -> None:
    """Poll /readyz until Redis, Kafka and the consumer are connected."""
    async with asyncio.timeout(seconds):
        while (resp := await client.get("/readyz")).status != 200:
            await resp.release()
            await asyncio.sleep(0.05)


@pytest.fixture
async def start_live(live_settings: Settings, redis: aioredis.Redis) -> AsyncIterator[StartLive]:
    """Start live instances in-process (each a TestServer); all are closed at the end."""
    started: list[TestClient[Any, Any]] = []

    async def start(settings: Settings | None = None, **options: Any) -> TestClient[Any, Any]:
        app = create_app(settings or live_settings, LiveOptions(**options))
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        started.append(client)
        await wait_ready(client)
        return client

    yield start
    for client in reversed(started):
        await client.close()
