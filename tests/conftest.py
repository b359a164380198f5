"""Fixtures shared by the suite.

Integration and end-to-end tests talk to the real Kafka, PostgreSQL and Redis that the set-up
started (`make test` starts them; their URLs come from the environment, with the local
defaults of deploy/local/env.sh). Each test isolates itself with its own topic prefix,
consumer group, database schema or key prefix, and removes what it made.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shared.config import Settings
from shared.kafka import delete_topics, ensure_topics

pytest_plugins = ["tests.stack"]  # fixtures for tests that drive the running stack


@pytest.fixture
def unique() -> str:
    """A short id to name what one test creates."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_settings(unique: str) -> Callable[..., Settings]:
    """Settings for one service, on an isolated topic prefix and consumer group for this test."""

    def build(service: str, **env: str) -> Settings:
        merged = dict(os.environ)
        merged.setdefault("LOG_JSON", "true")
        merged["KAFKA_TOPIC_PREFIX"] = f"test-{unique}"
        merged[f"{service.upper()}_CONSUMER_GROUP"] = f"test-{unique}-{service}"
        merged[f"{service.upper()}_PORT"] = "0"
        merged.update(env)
        return Settings.from_env(service, merged)

    return build


@pytest.fixture
async def topics(make_settings: Callable[..., Settings]) -> AsyncIterator[Settings]:
    """Create this test's own topics; delete them afterwards."""
    settings = make_settings("test")
    await ensure_topics(settings.kafka)
    yield settings
    await delete_topics(settings.kafka)


@pytest.fixture
async def database_url(unique: str) -> AsyncIterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema of this test's own; dropped afterwards."""
    import asyncpg

    base = os.environ.get("DATABASE_URL", Settings.from_env("test", {}).database_url)
    schema = f"test_{unique}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
async def started() -> AsyncIterator[Callable[[Any], Any]]:
    """Start Dependencies in the background and stop them after the test: `await started(dep)`."""
    deps: list[Any] = []

    async def start(dep: Any) -> Any:
        deps.append(dep)
        dep.start()
        return await asyncio.wait_for(dep.wait(), 30)

    yield start
    for dep in reversed(deps):
        await dep.stop()
