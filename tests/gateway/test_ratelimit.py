"""Per-principal and per-address rate limits, counted in Redis; failing open when Redis is away."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.gateway.conftest import Accounts, StartGateway, assert_error


def _limited(kind: str) -> float:
    return REGISTRY.get_sample_value("snapline_gateway_rate_limited_total", {"kind": kind}) or 0.0


async def test_a_key_over_its_limit_gets_429(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(RATE_LIMIT_PER_MINUTE="3")
    _, key = await people.key("viewer")
    _, other = await people.key("viewer")
    before = _limited("key")
    # Seven requests hold more than three in one minute window even if a window ends midway.
    statuses = [(await gateway.get("/v1/teams", headers={"X-API-Key": key})).status for _ in range(7)]
    assert statuses.count(429) >= 1 and statuses[0] == 200
    resp = await gateway.get("/v1/teams", headers={"X-API-Key": key})
    if resp.status == 429:
        await assert_error(resp, 429, "rate_limited")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert _limited("key") > before
    # Another principal has its own budget.
    assert (await gateway.get("/v1/teams", headers={"X-API-Key": other})).status == 200


async def test_sign_in_is_limited_per_address(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(RATE_LIMIT_PER_MINUTE="3")
    body = {"username": "nobody-here", "password": "x"}
    statuses = [(await gateway.post("/v1/auth/token", json=body)).status for _ in range(7)]
    assert set(statuses) == {401, 429}


async def test_redis_down_fails_open_for_keys(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(
        wait_redis=False, REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT_PER_MINUTE="1"
    )
    _, key = await people.key("viewer")
    for _ in range(3):
        assert (await gateway.get("/v1/teams", headers={"X-API-Key": key})).status == 200
    # Tokens do need Redis: signing in says so instead of failing obscurely.
    name, password = await people.user("viewer")
    resp = await gateway.post("/v1/auth/token", json={"username": name, "password": password})
    await assert_error(resp, 503, "unavailable")
    assert "Retry-After" in resp.headers
