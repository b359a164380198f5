"""shared.redisline against the real Redis: many callers on one pipelined connection."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.exceptions import AuthenticationError, ConnectionError, NoScriptError, ResponseError
from yarl import URL

from shared.config import Settings
from shared.redisline import RedisLine


@pytest.fixture
async def redis(unique: str) -> AsyncIterator[aioredis.Redis]:
    """redis-py on the test Redis; the test's keys (test:<unique>:*) are removed afterwards."""
    client = aioredis.Redis.from_url(Settings.from_env("test").redis_url)
    yield client
    async for key in client.scan_iter(match=f"test:{unique}:*"):
        await client.delete(key)
    await client.aclose()


def _connects(name: str) -> float:
    value = REGISTRY.get_sample_value(
        "snapline_redis_pipeline_connects_total", {"service": "test", "line": name}
    )
    return value or 0.0


async def test_concurrent_callers_each_get_their_own_reply(unique: str, redis: aioredis.Redis) -> None:
    line = RedisLine(Settings.from_env("test").redis_url, "test", f"order-{unique}")
    try:
        keys = [f"test:{unique}:k{i}" for i in range(400)]
        await asyncio.gather(
            *(line.call("SET", k, f"v{i}".encode() * (i % 7 + 1)) for i, k in enumerate(keys))
        )
        got = await asyncio.gather(*(line.call("GET", k) for k in keys))
        assert got == [f"v{i}".encode() * (i % 7 + 1) for i in range(400)]
        # Interleaved commands of different kinds stay matched to their callers.
        mixed = await asyncio.gather(*(line.call("STRLEN", k) if i % 2 else line.call("EXISTS", k)
                                       for i, k in enumerate(keys)))  # fmt: skip
        assert mixed == [len(f"v{i}") * (i % 7 + 1) if i % 2 else 1 for i in range(400)]
        assert _connects(f"order-{unique}") == 1
    finally:
        await line.close()


async def test_error_replies_are_raised_and_the_line_stays_in_step(
    unique: str, redis: aioredis.Redis
) -> None:
    line = RedisLine(Settings.from_env("test").redis_url, "test", f"errors-{unique}")
    key = f"test:{unique}:text"
    try:
        await line.call("SET", key, "not a number")
        results = await asyncio.gather(
            line.call("INCR", key), line.call("GET", key), line.call("EVALSHA", "0" * 40, 0),
            line.call("EVAL", "return ARGV[1]", 0, "ok"), return_exceptions=True,
        )  # fmt: skip
        assert isinstance(results[0], ResponseError) and "not an integer" in str(results[0])
        assert results[1] == b"not a number"
        assert isinstance(results[2], NoScriptError)
        assert results[3] == b"ok"
        script = "return KEYS[1] .. ':' .. ARGV[1]"
        with pytest.raises(NoScriptError):
            await line.call("EVALSHA", hashlib.sha1(script.encode()).hexdigest(), 1, "a", "b")
    finally:
        await line.close()


async def test_a_lost_connection_fails_its_waiters_and_the_next_call_reconnects(
    unique: str, redis: aioredis.Redis
) -> None:
    name = f"lost-{unique}"
    line = RedisLine(Settings.from_env("test").redis_url, "test", name)
    try:
        client_id = await line.call("CLIENT", "ID")
        # A caller blocked on the line (BLPOP) when the server kills the connection.
        blocked = asyncio.ensure_future(line.call("BLPOP", f"test:{unique}:never", 5))
        behind = asyncio.ensure_future(line.call("PING"))
        await asyncio.sleep(0)  # both written
        assert await redis.execute_command("CLIENT", "KILL", "ID", client_id) == 1
        for waiter in (blocked, behind):
            with pytest.raises(ConnectionError):
                await waiter
        assert await line.call("PING") == b"PONG"
        assert await line.call("CLIENT", "ID") != client_id
        assert _connects(name) == 2
    finally:
        await line.close()


async def test_waiting_replies_are_bounded(unique: str, redis: aioredis.Redis) -> None:
    name = f"bound-{unique}"
    line = RedisLine(Settings.from_env("test").redis_url, "test", name, max_pending=2)
    labels = {"service": "test", "line": name}
    try:
        await line.call("PING")
        first = asyncio.ensure_future(line.call("BLPOP", f"test:{unique}:q", 5))
        second = asyncio.ensure_future(line.call("BLPOP", f"test:{unique}:q", 5))
        third = asyncio.ensure_future(line.call("RPUSH", f"test:{unique}:q", "a", "b"))
        await asyncio.sleep(0.05)
        # The third caller has not been written: the two blocked replies hold both slots.
        assert REGISTRY.get_sample_value("snapline_redis_pipeline_pending", labels) == 2
        assert not third.done()
        await redis.rpush(f"test:{unique}:q", "x", "y")  # from another connection: frees both
        assert {(await first)[1], (await second)[1]} == {b"x", b"y"}
        assert await third == 2
        assert REGISTRY.get_sample_value("snapline_redis_pipeline_pending", labels) == 0
    finally:
        await line.close()


async def test_the_urls_database_and_password_are_used(unique: str) -> None:
    url = URL(Settings.from_env("test").redis_url)
    key = f"test:{unique}:db"
    line = RedisLine(str(url.with_path("/5")), "test", f"db-{unique}")
    other = aioredis.Redis.from_url(str(url.with_path("/5")))
    try:
        await line.call("SET", key, "in five")
        assert await other.get(key) == b"in five"
    finally:
        await other.delete(key)
        await other.aclose()
        await line.close()
    wrong = RedisLine(str(url.with_password("not-the-password")), "test", f"auth-{unique}")
    with pytest.raises(AuthenticationError):
        await wrong.call("PING")
    await wrong.close()
    with pytest.raises(ConnectionError):
        await RedisLine("redis://127.0.0.1:1/0", "test", f"down-{unique}").call("PING")
    with pytest.raises(ValueError, match="redis://"):
        RedisLine("http://127.0.0.1:6379", "test", f"scheme-{unique}")
