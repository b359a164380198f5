"""A dump of the gateway's PostgreSQL tables and Redis keys holds no key, token or password that works."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.gateway.keys import KEYSET, REDIS_PREFIX
from shared.config import Settings
from tests.gateway.conftest import Accounts, Client, sign_in


async def _dump(people: Accounts, prefix: str) -> str:
    parts: list[str] = []
    for table in ("gateway_users", "gateway_keys"):
        rows = await people.pool.fetch(f"SELECT * FROM {table}")
        parts += [repr(dict(r)) for r in rows]
    redis = aioredis.Redis.from_url(Settings.from_env("test").redis_url)
    try:
        async for key in redis.scan_iter(match=f"{prefix}*"):
            kind = await redis.type(key)
            if kind == b"string":
                value = await redis.get(key)
            elif kind == b"hash":
                value = await redis.hgetall(key)
            elif kind == b"set":
                value = await redis.smembers(key)
            else:
                value = kind
            parts.append(f"{key!r}={value!r}")
    finally:
        await redis.aclose()
    return "\n".join(parts)


async def test_dumps_hold_nothing_usable(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("analyst", "a password nobody guesses")
    _, key = await people.key("feed")
    first = await sign_in(gateway, name, password)
    resp = await gateway.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    second = await resp.json()
    assert (await gateway.post("/v1/events", json={}, headers={"X-API-Key": key})).status == 200
    dump = await _dump(people, gateway.app[REDIS_PREFIX])
    assert name in dump  # the dump did read this test's rows and keys
    secrets = [password, key, key.split("_", 2)[2]]  # snp_<key id>_<secret>: the secret may hold "_"
    for pair in (first, second):
        secrets += [pair["access_token"], pair["refresh_token"], pair["refresh_token"].split(".", 1)[1]]
    for secret in secrets:
        assert secret not in dump
    # Nor the signing key: only the gateway's key file holds it.
    private = gateway.app[KEYSET].signing.private.private_bytes_raw().hex()
    assert private not in dump
