"""Proxied reads sent upstream while their gate runs: a refusal or a revocation still wins, nothing
of the answer reaches a refused caller, and a caller near its limit always waits for the gate."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from tests.gateway.conftest import Accounts, StartGateway, assert_error, bearer, sign_in


def _speculative(outcome: str) -> float:
    return REGISTRY.get_sample_value("snapline_gateway_speculative_total", {"outcome": outcome}) or 0.0


@pytest.mark.parametrize("path", ["/v1/teams", "/v1/plays/big"])  # answered whole / streamed
async def test_a_read_sent_ahead_is_refused_when_another_instance_spent_the_budget(
    start_gateway: StartGateway, people: Accounts, path: str
) -> None:
    # 20 a minute: one request comes back every 3 s, far longer than this sequence takes.
    one = await start_gateway(RATE_LIMIT_PER_MINUTE="20")
    two = await start_gateway(RATE_LIMIT_PER_MINUTE="20")
    _, key = await people.key("viewer")
    headers = {"X-API-Key": key}
    assert (await one.get("/v1/teams", headers=headers)).status == 200  # instance one: 19 left
    admitted = _speculative("admitted")
    resp = await one.get(path, headers=headers)
    assert resp.status == 200 and len(await resp.read()) > 100
    assert _speculative("admitted") == admitted + 1
    assert resp.headers["RateLimit-Remaining"] == "18"
    # The other instance spends the rest (on a small answer, quickly); one still believes 18 are left.
    statuses = [(await two.get("/v1/teams", headers=headers)).status for _ in range(19)]
    assert statuses.count(200) == 18 and statuses[-1] == 429
    refused = _speculative("refused")
    resp = await one.get(path, headers=headers)
    body = await assert_error(resp, 429, "rate_limited")
    assert "path" not in body and "line" not in body and int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert _speculative("refused") == refused + 1
    # Refused once, instance one waits for the gate from now on.
    admitted, refused = _speculative("admitted"), _speculative("refused")
    await assert_error(await one.get(path, headers=headers), 429, "rate_limited")
    assert (_speculative("admitted"), _speculative("refused")) == (admitted, refused)


async def test_a_revoked_key_is_refused_even_when_its_read_went_ahead(
    start_gateway: StartGateway, people: Accounts
) -> None:
    one, two = await start_gateway(), await start_gateway()
    _, admin_key = await people.key("admin")
    admin = {"X-API-Key": admin_key}
    resp = await one.post(
        "/v1/admin/keys", json={"name": people.name("viewer"), "role": "viewer"}, headers=admin
    )
    made = await resp.json()
    headers = {"X-API-Key": made["key"]}
    assert (await two.get("/v1/teams", headers=headers)).status == 200  # cached at two, with credit
    assert (await one.delete(f"/v1/admin/keys/{made['key_id']}", headers=admin)).status == 204
    refused = _speculative("refused")
    body = await assert_error(await two.get("/v1/teams", headers=headers), 401, "unauthorized")
    assert "path" not in body
    assert _speculative("refused") == refused + 1


async def test_a_logged_out_token_is_refused_even_when_its_read_went_ahead(
    start_gateway: StartGateway, people: Accounts
) -> None:
    one, two = await start_gateway(), await start_gateway()
    name, password = await people.user("viewer")
    pair = await sign_in(one, name, password)
    assert (await two.get("/v1/plays", headers=bearer(pair["access_token"]))).status == 200
    assert (await one.post("/v1/auth/logout", headers=bearer(pair["access_token"]))).status == 204
    refused = _speculative("refused")
    await assert_error(await two.get("/v1/plays", headers=bearer(pair["access_token"])), 401, "unauthorized")
    assert _speculative("refused") == refused + 1


async def test_a_caller_near_its_limit_always_waits_for_the_gate(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway(RATE_LIMIT_PER_MINUTE="12")  # under the margin of 16 reads
    _, key = await people.key("viewer")
    before = _speculative("admitted"), _speculative("refused")
    statuses = [(await gateway.get("/v1/teams", headers={"X-API-Key": key})).status for _ in range(14)]
    assert statuses == [200] * 12 + [429] * 2
    assert (_speculative("admitted"), _speculative("refused")) == before


async def test_writes_and_refused_roles_never_go_ahead(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway()
    _, viewer = await people.key("viewer")
    _, feed = await people.key("feed")
    for _ in range(3):
        assert (await gateway.get("/v1/teams", headers={"X-API-Key": viewer})).status == 200
        assert (await gateway.post("/v1/events", json={}, headers={"X-API-Key": feed})).status == 200
    before = _speculative("admitted"), _speculative("refused")
    # A viewer may not read import jobs: 403 after the gate, never sent upstream first.
    await assert_error(await gateway.get("/v1/imports/x", headers={"X-API-Key": viewer}), 403, "forbidden")
    assert (await gateway.post("/v1/events", json={}, headers={"X-API-Key": feed})).status == 200
    assert (_speculative("admitted"), _speculative("refused")) == before


async def test_concurrent_reads_ahead_stay_exact(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(RATE_LIMIT_PER_MINUTE="20")  # one back every 3 s
    _, key = await people.key("viewer")
    headers = {"X-API-Key": key}
    assert (await gateway.get("/v1/teams", headers=headers)).status == 200  # 19 left: credit
    responses = await asyncio.gather(*(gateway.get("/v1/teams", headers=headers) for _ in range(80)))
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 19 and statuses.count(429) == 61
    for resp in responses:
        if resp.status == 429:
            assert "path" not in await assert_error(resp, 429, "rate_limited")


async def test_speculation_can_be_turned_off(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(GATEWAY_SPECULATIVE_READS="false")
    _, key = await people.key("viewer")
    before = _speculative("admitted")
    for _ in range(5):
        assert (await gateway.get("/v1/teams", headers={"X-API-Key": key})).status == 200
    assert _speculative("admitted") == before
