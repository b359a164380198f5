"""Gateway fixtures: a real upstream on a random port, gateways pointed at it, users and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from services.gateway import accounts, keyset
from services.gateway.app import create_app
from services.gateway.keys import POSTGRES, REDIS, UPSTREAM_TIMEOUT
from services.gateway.upstreams import Timeouts
from shared.config import Settings
from shared.db import migrate
from tests.gateway.upstream import upstream_app

Client = TestClient[Any, Any]
StartGateway = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="session")
async def pool(session_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's schema, with the gateway's tables."""
    pool = await asyncpg.create_pool(session_database_url, min_size=1, max_size=3)
    await migrate(pool, "services.gateway")
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def upstream() -> AsyncIterator[str]:
    """The base URL of a stand-in for every upstream service."""
    server = TestServer(upstream_app())
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


class Accounts:
    """Users and keys one test made, removed afterwards."""

    def __init__(self, pool: asyncpg.Pool, unique: str) -> None:
        self.pool = pool
        self.unique = unique
        self.names: list[str] = []

    def name(self, role: str) -> str:
        self.names.append(f"t-{self.unique}-{role}-{len(self.names)}")
        return self.names[-1]

    async def user(self, role: str, password: str = "correct horse") -> tuple[str, str]:
        name = self.name(role)
        await accounts.create_user(self.pool, name, password, role)
        return name, password

    async def key(self, role: str) -> tuple[str, str]:
        name = self.name(role)
        _, key, _ = await accounts.create_key(self.pool, name, role)
        return name, key

    async def remove(self) -> None:
        await self.pool.execute("DELETE FROM gateway_users WHERE username = ANY($1)", self.names)
        await self.pool.execute("DELETE FROM gateway_keys WHERE name = ANY($1)", self.names)


@pytest.fixture
async def people(pool: asyncpg.Pool, unique: str) -> AsyncIterator[Accounts]:
    made = Accounts(pool, unique)
    yield made
    await made.remove()


@pytest.fixture(scope="session")
def jwt_keys_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A signing key set of the test run's own (never the development one that ships)."""
    path = tmp_path_factory.mktemp("jwt") / "jwt-keys.json"
    keyset.write(path, [keyset.new_key()])
    return str(path)


@pytest.fixture
async def start_gateway(
    make_settings: Callable[..., Settings], upstream: str, jwt_keys_file: str
) -> AsyncIterator[StartGateway]:
    """Start gateways on random ports; their Redis keys are removed afterwards."""
    clients: list[Client] = []
    prefixes: set[str] = set()

    async def start(read_timeout: float | None = None, wait_redis: bool = True, **env: str) -> Client:
        urls = {f"{name}_URL": upstream for name in ("INGEST", "QUERY", "ANALYTICS", "LIVE")}
        urls["JWT_KEYS_FILE"] = jwt_keys_file
        settings = make_settings("gateway", **{**urls, **env})
        app = create_app(settings)
        if read_timeout is not None:
            app[UPSTREAM_TIMEOUT] = Timeouts(read_timeout, read_timeout)
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        await app[POSTGRES].wait()
        if wait_redis:
            await app[REDIS].wait()
        prefixes.add(f"{settings.kafka.topic_prefix}:gateway:")
        return client

    yield start
    for client in clients:
        await client.close()
    redis = aioredis.Redis.from_url(Settings.from_env("test").redis_url)
    for prefix in prefixes:
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
    await redis.aclose()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Client:
    """A gateway with default settings, pointed at the stand-in upstream."""
    return await start_gateway()


async def sign_in(client: Client, username: str, password: str) -> dict[str, Any]:
    """The token pair for a user; fails the test when sign-in does not succeed."""
    resp = await client.post("/v1/auth/token", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def assert_error(resp: aiohttp.ClientResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` in the JSON error format (with `code` when given)."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    if code is not None:
        assert error["code"] == code
    result: dict[str, Any] = error
    return result
