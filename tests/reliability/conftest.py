"""Fixtures of the dependency-down tests: private engines, and in-process services pointed at them.

The engines are session-scoped and started on first use (a run of one module pays only for what
it uses); a test that stops or kills one gets it back running before the next test starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.config import Settings
from shared.kafka import delete_topics, ensure_topics
from tests.infra import PrivateKafka, PrivatePostgres, PrivateProcess, PrivateRedis, sweep_orphans

Client = TestClient[Any, Any]


async def _running(engine: PrivateProcess) -> PrivateProcess:
    if not engine.running:  # a previous test left it down (failed before restarting it)
        await engine.start()
    return engine


@pytest.fixture(scope="session", autouse=True)
def _orphans_swept() -> None:
    """Engines a killed earlier run left behind go first (by the pids that run recorded)."""
    sweep_orphans()


@pytest.fixture(scope="session")
async def kafka_engine() -> AsyncIterator[PrivateKafka]:
    async with PrivateKafka() as kafka:
        yield kafka


@pytest.fixture(scope="session")
async def postgres_engine() -> AsyncIterator[PrivatePostgres]:
    async with PrivatePostgres() as postgres:
        yield postgres


@pytest.fixture(scope="session")
async def redis_engine() -> AsyncIterator[PrivateRedis]:
    async with PrivateRedis() as redis:
        yield redis


@pytest.fixture
async def kafka(kafka_engine: PrivateKafka) -> PrivateKafka:
    """The private broker, running."""
    await _running(kafka_engine)
    return kafka_engine


@pytest.fixture
async def postgres(postgres_engine: PrivatePostgres) -> PrivatePostgres:
    """The private PostgreSQL, running."""
    await _running(postgres_engine)
    return postgres_engine


@pytest.fixture
async def redis(redis_engine: PrivateRedis) -> PrivateRedis:
    """The private Redis, running."""
    await _running(redis_engine)
    return redis_engine


@pytest.fixture
async def private_settings(
    make_settings: Callable[..., Settings],
    kafka: PrivateKafka,
    postgres: PrivatePostgres,
    redis: PrivateRedis,
) -> AsyncIterator[Callable[..., Settings]]:
    """`private_settings(service, **env)`: a service's settings on the private engines, with this
    test's topics (created here, deleted afterwards with the test's consumer groups)."""
    env = {"KAFKA_BOOTSTRAP": kafka.bootstrap, "DATABASE_URL": postgres.url, "REDIS_URL": redis.url}

    def build(service: str, **more: str) -> Settings:
        return make_settings(service, **{**env, **more})

    settings = build("test")
    await ensure_topics(settings.kafka)
    yield build
    await _running(kafka)
    await delete_topics(settings.kafka)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Any]]:
    """`await serve(app)`: a test client of an in-process service; closed after the test."""
    clients: list[Client] = []

    async def start(app: web.Application) -> Client:
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        await client.close()
