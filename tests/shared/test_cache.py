"""The Redis client built by shared.cache, against the real Redis: commands packed by hiredis."""

from __future__ import annotations

import pytest
from redis.exceptions import DataError

from shared.cache import HiredisPackingConnection, _connect
from shared.config import Settings


async def test_commands_scripts_and_pipelines_round_trip(unique: str) -> None:
    settings = Settings.from_env("test")
    client = await _connect(settings)
    try:
        assert client.connection_pool.connection_class is HiredisPackingConnection
        key = f"test:{unique}:cache"
        value = "é\n\x00" * 3000  # non-ASCII, binary and longer than redis-py's buffer cutoff
        await client.hset(key, mapping={"text": value, "int": 7, "float": 0.5, "bytes": b"\xff\x00"})
        assert await client.hgetall(key) == {
            b"text": value.encode(),
            b"int": b"7",
            b"float": b"0.5",
            b"bytes": b"\xff\x00",
        }
        assert await client.execute_command("CONFIG GET", "maxmemory-policy")  # a two-word command
        script = client.register_script("return #ARGV + #KEYS")
        assert await script(keys=[key], args=list(range(500))) == 501
        pipe = client.pipeline(transaction=False)
        await script(keys=[key], args=[1, 2], client=pipe)
        pipe.incrby(f"{key}:n", 5)
        assert await pipe.execute() == [3, 5]
        with pytest.raises(DataError):
            await client.set(f"{key}:none", None)  # type: ignore[arg-type]
        await client.delete(key, f"{key}:n")
    finally:
        await client.aclose()
