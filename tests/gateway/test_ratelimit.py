"""GCRA limits in Redis: exact under concurrency, RateLimit-* headers, sign-in and failed-auth budgets,
X-Forwarded-For from trusted proxies only, route costs, and the policy when Redis is away."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from services.gateway import accounts
from tests.gateway.conftest import Accounts, StartGateway, assert_error, sign_in


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_burst_gets_exactly_the_limit(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(RATE_LIMIT_PER_MINUTE="10")
    _, key = await people.key("viewer")
    _, other = await people.key("viewer")
    before = _sample("snapline_gateway_rate_limited_total", kind="key")
    responses = await asyncio.gather(
        *(gateway.get("/v1/teams", headers={"X-API-Key": key}) for _ in range(30))
    )
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    refused = next(r for r in responses if r.status == 429)
    await assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 7  # one request comes back every 6 s
    assert refused.headers["RateLimit-Limit"] == "10" and refused.headers["RateLimit-Remaining"] == "0"
    assert _sample("snapline_gateway_rate_limited_total", kind="key") - before == 20
    remaining = sorted(int(r.headers["RateLimit-Remaining"]) for r in responses if r.status == 200)
    assert remaining == list(range(10))
    # Another principal has its own budget.
    assert (await gateway.get("/v1/teams", headers={"X-API-Key": other})).status == 200


async def test_every_guarded_response_carries_the_headers(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway()
    _, key = await people.key("viewer")
    for path, headers in (("/v1/teams", {"X-API-Key": key}), ("/v1/plays/none?status=404", {"X-API-Key": key}),
                          ("/openapi.json", {}), ("/v1/teams", {"X-API-Key": "wrong"})):  # fmt: skip
        resp = await gateway.get(path, headers=headers)
        assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(resp.headers), path


async def test_writes_cost_more_than_reads(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(RATE_LIMIT_PER_MINUTE="10")
    _, key = await people.key("feed")
    statuses = [
        (await gateway.post("/v1/events", json={}, headers={"X-API-Key": key})).status for _ in range(3)
    ]
    assert statuses == [200, 200, 429]  # an event post costs 5 of the 10


async def test_sign_in_is_limited_per_account_and_address(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway()  # defaults: 5 per account and address, 20 per address
    name, password = await people.user("viewer")
    other, other_password = await people.user("viewer")
    for _ in range(5):
        resp = await gateway.post("/v1/auth/token", json={"username": name, "password": "guess"})
        await assert_error(resp, 401)
    # The right password does not help once the account's attempts from here are spent...
    resp = await gateway.post("/v1/auth/token", json={"username": name, "password": password})
    error = await assert_error(resp, 429, "rate_limited")
    assert "sign-in" in error["message"] and int(resp.headers["Retry-After"]) >= 1
    # ...but this address has not locked anyone else out.
    await sign_in(gateway, other, other_password)


async def test_failed_authentications_are_limited_per_address(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(AUTH_FAILURES_PER_MINUTE="5")
    statuses = []
    for i in range(8):
        statuses.append((await gateway.get("/v1/teams", headers={"X-API-Key": f"snp_guess{i}"})).status)
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3
    misses = _sample("snapline_gateway_api_key_cache_total", outcome="miss")
    resp = await gateway.get("/v1/teams", headers={"X-API-Key": "snp_another-guess"})
    await assert_error(resp, 429)
    # Refused before any PostgreSQL lookup.
    assert _sample("snapline_gateway_api_key_cache_total", outcome="miss") == misses


async def test_forwarded_for_only_from_trusted_proxies(start_gateway: StartGateway) -> None:
    async def statuses(gateway: object, hop: str) -> list[int]:
        out = []
        for _ in range(3):
            resp = await gateway.get("/openapi.json", headers={"X-Forwarded-For": hop})  # type: ignore[attr-defined]
            out.append(resp.status)
        return out

    trusted = await start_gateway(RATE_LIMIT_IP_PER_MINUTE="2", TRUSTED_PROXIES="127.0.0.0/8")
    assert await statuses(trusted, "203.0.113.5") == [200, 200, 429]
    assert await statuses(trusted, "203.0.113.6") == [200, 200, 429]  # another client behind the proxy
    untrusted = await start_gateway(RATE_LIMIT_IP_PER_MINUTE="2")
    assert await statuses(untrusted, "203.0.113.7") == [200, 200, 429]
    assert await statuses(untrusted, "203.0.113.8") == [429, 429, 429]  # a forged header changes nothing


async def test_redis_down_limits_fail_open_revocation_does_not(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway(
        wait_redis=False, REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT_PER_MINUTE="1"
    )
    _, key = await people.key("viewer")
    name, revoked = await people.key("viewer")
    key_id = await people.pool.fetchval("SELECT key_id FROM gateway_keys WHERE name = $1", name)
    await accounts.revoke_key(people.pool, key_id)
    before = _sample("snapline_gateway_rate_limit_errors_total")
    for _ in range(3):
        assert (await gateway.get("/v1/teams", headers={"X-API-Key": key})).status == 200
    assert _sample("snapline_gateway_rate_limit_errors_total") - before >= 3
    await assert_error(await gateway.get("/v1/teams", headers={"X-API-Key": revoked}), 401)
    # Sign-in needs its attempt counts: it says so instead of allowing unlimited guesses.
    user, password = await people.user("viewer")
    resp = await gateway.post("/v1/auth/token", json={"username": user, "password": password})
    await assert_error(resp, 503, "unavailable")
    assert "Retry-After" in resp.headers


async def test_a_burst_larger_than_the_redis_pool_waits_instead_of_failing_open(
    start_gateway: StartGateway, people: Accounts
) -> None:
    # A budget long enough for the burst's queue on a loaded machine: what is tested is that the
    # pool makes commands wait, where redis-py's default pool raised "Too many connections".
    gateway = await start_gateway(
        REDIS_MAX_CONNECTIONS="4", RATE_LIMIT_PER_MINUTE="100000", RATE_LIMIT_REDIS_BUDGET="30"
    )
    _, key = await people.key("viewer")
    before = _sample("snapline_gateway_rate_limit_errors_total")
    responses = await asyncio.gather(
        *(gateway.get("/v1/teams", headers={"X-API-Key": key}) for _ in range(300))
    )
    assert [r.status for r in responses] == [200] * 300
    # Every one was counted: none passed because the pool had no connection free.
    assert _sample("snapline_gateway_rate_limit_errors_total") == before
    assert _sample("snapline_redis_pool_connections", service="gateway", state="limit") == 4
