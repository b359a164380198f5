"""Sign-in, refresh, logout, token checks, roles and API keys, against real PostgreSQL and Redis."""

from __future__ import annotations

import time

import jwt
from prometheus_client import REGISTRY

from shared.http import SETTINGS
from tests.gateway.conftest import Accounts, Client, assert_error, bearer, sign_in


async def test_token_grants_access_with_identity_headers(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("analyst")
    pair = await sign_in(gateway, name, password)
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == gateway.app[SETTINGS].access_token_ttl
    claims = jwt.decode(pair["access_token"], gateway.app[SETTINGS].jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == name and claims["role"] == "analyst"
    assert {"exp", "iat", "jti"} <= set(claims)
    resp = await gateway.get("/v1/plays?season=2013", headers=bearer(pair["access_token"]))
    assert resp.status == 200
    seen = (await resp.json())["headers"]
    assert seen["X-Snapline-Subject"] == f"user:{name}"
    assert seen["X-Snapline-Role"] == "analyst"


async def test_wrong_password_and_unknown_user_are_401(gateway: Client, people: Accounts) -> None:
    name, _ = await people.user("viewer")
    for username in (name, f"{name}-nobody"):
        resp = await gateway.post("/v1/auth/token", json={"username": username, "password": "wrong"})
        await assert_error(resp, 401, "unauthorized")


async def test_bad_sign_in_bodies_are_400(gateway: Client) -> None:
    resp = await gateway.post(
        "/v1/auth/token", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    await assert_error(resp, 400)
    resp = await gateway.post("/v1/auth/token", json=["a"])
    await assert_error(resp, 400)
    resp = await gateway.post("/v1/auth/token", json={"username": "x", "password": 3})
    error = await assert_error(resp, 400)
    assert error["details"] == [{"field": "password", "error": "must be a non-empty string"}]


async def test_refresh_token_is_single_use(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    resp = await gateway.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status == 200
    fresh = await resp.json()
    assert fresh["refresh_token"] != pair["refresh_token"]
    assert (await gateway.get("/v1/teams", headers=bearer(fresh["access_token"]))).status == 200
    again = await gateway.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    await assert_error(again, 401, "unauthorized")


async def test_refresh_takes_the_current_role(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    await people.pool.execute("UPDATE gateway_users SET role = 'feed' WHERE username = $1", name)
    resp = await gateway.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    claims = jwt.decode((await resp.json())["access_token"], options={"verify_signature": False})
    assert claims["role"] == "feed"


async def test_logout_revokes_access_and_refresh_tokens(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    headers = bearer(pair["access_token"])
    resp = await gateway.post(
        "/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=headers
    )
    assert resp.status == 204
    resp = await gateway.get("/v1/teams", headers=headers)
    await assert_error(resp, 401, "unauthorized")
    assert "invalid_token" in resp.headers["WWW-Authenticate"]
    resp = await gateway.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    await assert_error(resp, 401)


async def test_logout_needs_authentication(gateway: Client) -> None:
    resp = await gateway.post("/v1/auth/logout")
    await assert_error(resp, 401)


async def test_missing_expired_and_forged_tokens_are_401(gateway: Client) -> None:
    secret = gateway.app[SETTINGS].jwt_secret
    now = int(time.time())
    claims = {"sub": "someone", "role": "admin", "iat": now - 100, "exp": now - 10, "jti": "x"}
    expired = jwt.encode(claims, secret, algorithm="HS256")
    forged = jwt.encode(
        {**claims, "exp": now + 100}, "not-the-secret-but-long-enough-for-hs256", algorithm="HS256"
    )
    cases = [{}, bearer(expired), bearer(forged), bearer("garbage"), {"Authorization": "Basic abc"}]
    for headers in cases:
        resp = await gateway.get("/v1/plays", headers=headers)
        await assert_error(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await gateway.get("/v1/plays", headers=bearer(expired))
    assert "expired" in (await assert_error(resp, 401))["message"]


async def test_wrong_role_is_403(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    resp = await gateway.post("/v1/events", json={}, headers=bearer(pair["access_token"]))
    error = await assert_error(resp, 403, "forbidden")
    assert "feed" in error["message"]
    resp = await gateway.get("/v1/imports/abc", headers=bearer(pair["access_token"]))
    await assert_error(resp, 403, "forbidden")


async def test_api_key_authenticates_and_is_cached(gateway: Client, people: Accounts) -> None:
    name, key = await people.key("feed")

    def hits() -> float:
        return REGISTRY.get_sample_value("snapline_gateway_api_key_cache_total", {"outcome": "hit"}) or 0.0

    before = hits()
    for _ in range(3):
        resp = await gateway.post("/v1/events", json={"e": 1}, headers={"X-API-Key": key})
        assert resp.status == 200
    assert (await resp.json())["headers"]["X-Snapline-Subject"] == f"key:{name}"
    assert hits() - before == 2
    resp = await gateway.get("/v1/plays", headers={"X-API-Key": key + "x"})
    await assert_error(resp, 401, "unauthorized")
