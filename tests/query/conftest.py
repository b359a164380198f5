"""Fixtures of the query tests: the service's pools on a test database, and a running instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.query.app import create_app
from services.query.keys import POSTGRES
from shared.config import Settings
from shared.db import postgres_dependency
from tests.servers import ServiceServer


@pytest.fixture
async def db(database_url: str, make_settings: Callable[..., Settings], started: Any) -> Any:
    """The query service's pools (schema migrated) on this test's database."""
    dep = postgres_dependency(make_settings("query", DATABASE_URL=database_url), migrations="services.query")
    await started(dep)
    return dep


@pytest.fixture
async def query(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[TestClient[Any, Any]]:
    """A query instance in process on this test's database and topics."""
    app = create_app(make_settings("query", DATABASE_URL=database_url))
    client: TestClient[Any, Any] = TestClient(ServiceServer(app))
    await client.start_server()
    await asyncio.wait_for(app[POSTGRES].wait(), 30)
    yield client
    await client.close()
