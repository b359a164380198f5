"""Sign-in, access tokens (EdDSA, RFC 8725 checks), the JWKS, roles and API keys, against real PostgreSQL and Redis."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from services.gateway import accounts
from services.gateway.keys import KEYSET, REDIS, TOKENS
from shared.accesstoken import JwksVerifier, keys_from_jwks, verify
from shared.http import SETTINGS
from tests.gateway.conftest import Accounts, Client, StartGateway, assert_error, bearer, sign_in


async def _jwks(gateway: Client) -> dict[str, Any]:
    resp = await gateway.get("/.well-known/jwks.json")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_token_is_eddsa_with_every_claim_and_works(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("analyst")
    pair = await sign_in(gateway, name, password)
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == gateway.app[SETTINGS].access_token_ttl
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt"
    assert header["kid"] == gateway.app[KEYSET].signing.kid
    settings = gateway.app[SETTINGS]
    claims = verify(
        pair["access_token"], keys_from_jwks(await _jwks(gateway)), settings.jwt_issuer, settings.jwt_audience
    )
    assert claims["sub"] == name and claims["role"] == "analyst"
    assert {"iss", "aud", "exp", "iat", "nbf", "jti", "fam", "gen"} <= set(claims)
    resp = await gateway.get("/v1/plays?season=2013", headers=bearer(pair["access_token"]))
    assert resp.status == 200
    seen = (await resp.json())["headers"]
    assert seen["X-Snapline-Subject"] == f"user:{name}"
    assert seen["X-Snapline-Role"] == "analyst"


async def test_jwks_holds_public_keys_only_and_verifies_alone(gateway: Client, people: Accounts) -> None:
    doc = await _jwks(gateway)
    assert [k["kid"] for k in doc["keys"]] == [k.kid for k in gateway.app[KEYSET].keys]
    for key in doc["keys"]:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
        assert "d" not in key  # never the private part
    name, password = await people.user("viewer")
    token = (await sign_in(gateway, name, password))["access_token"]
    settings = gateway.app[SETTINGS]
    # What another service does: nothing but the JWKS URL.
    async with aiohttp.ClientSession() as http:
        verifier = JwksVerifier(str(gateway.make_url("/.well-known/jwks.json")), settings.jwt_issuer,
                                settings.jwt_audience, http)  # fmt: skip
        assert (await verifier.verify(token))["sub"] == name


def _claims(gateway: Client, **over: Any) -> dict[str, Any]:
    s = gateway.app[SETTINGS]
    now = int(time.time())
    claims = {"iss": s.jwt_issuer, "aud": s.jwt_audience, "sub": "someone", "role": "admin", "iat": now,
              "nbf": now, "exp": now + 300, "jti": "x", "fam": "f", "gen": 0}  # fmt: skip
    claims.update(over)
    return claims


async def test_forged_and_confused_tokens_are_401(gateway: Client) -> None:
    real = gateway.app[KEYSET].signing
    kid = real.kid
    stranger = Ed25519PrivateKey.generate()
    head = {"kid": kid, "typ": "at+jwt"}
    public_pem = real.public.public_bytes_raw()
    cases = {
        "another key, our kid": jwt.encode(_claims(gateway), stranger, algorithm="EdDSA", headers=head),
        "unknown kid": jwt.encode(_claims(gateway), stranger, algorithm="EdDSA", headers={**head, "kid": "nope"}),
        "HS256 with the public key": jwt.encode(_claims(gateway), public_pem.hex(), algorithm="HS256", headers=head),
        "alg none": jwt.encode(_claims(gateway), None, algorithm="none", headers=head),
        "not an access token": jwt.encode(_claims(gateway), real.private, algorithm="EdDSA", headers={"kid": kid}),
        "other audience": jwt.encode(_claims(gateway, aud="elsewhere"), real.private, algorithm="EdDSA", headers=head),
        "other issuer": jwt.encode(_claims(gateway, iss="evil"), real.private, algorithm="EdDSA", headers=head),
        "not yet valid": jwt.encode(_claims(gateway, nbf=int(time.time()) + 600), real.private,
                                    algorithm="EdDSA", headers=head),
        "no jti": jwt.encode({k: v for k, v in _claims(gateway).items() if k != "jti"}, real.private,
                             algorithm="EdDSA", headers=head),
        "garbage": "garbage",
    }  # fmt: skip
    for what, token in cases.items():
        resp = await gateway.get("/v1/plays", headers=bearer(token))
        assert resp.status == 401, what
        await assert_error(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    expired = jwt.encode(
        _claims(gateway, exp=int(time.time()) - 60), real.private, algorithm="EdDSA", headers=head
    )
    resp = await gateway.get("/v1/plays", headers=bearer(expired))
    assert "expired" in (await assert_error(resp, 401))["message"]
    for headers in ({}, {"Authorization": "Basic abc"}):
        await assert_error(await gateway.get("/v1/plays", headers=headers), 401, "unauthorized")


async def test_a_well_signed_token_of_a_stale_generation_is_refused(
    gateway: Client, people: Accounts
) -> None:
    # A token signed with the real key for a user whose generation moved on (as after logout).
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    assert (await gateway.get("/v1/teams", headers=bearer(pair["access_token"]))).status == 200
    await accounts.bump_generation(people.pool, name)
    await gateway.app[REDIS].get().delete(gateway.app[TOKENS].generation_key(name))  # cache miss: PostgreSQL
    await assert_error(await gateway.get("/v1/teams", headers=bearer(pair["access_token"])), 401)


async def test_wrong_password_and_unknown_user_are_401(gateway: Client, people: Accounts) -> None:
    name, _ = await people.user("viewer")
    for username in (name, f"{name}-nobody"):
        resp = await gateway.post("/v1/auth/token", json={"username": username, "password": "wrong"})
        await assert_error(resp, 401, "unauthorized")


async def test_bad_sign_in_bodies_are_400(gateway: Client) -> None:
    cases: list[bytes] = [
        b"{not json", b'["a"]', b'{"username": "x", "password": 3}', b'{"username": "x"}',
        b'{"username": "x\\u0000y", "password": "p"}', b'{"username": "x", "password": "\\ud800"}',
        b'{"username": "x", "password": "p", "extra": 1}', b"[" * 2000 + b"]" * 2000, b'{"username": "\xff"}',
    ]  # fmt: skip
    for raw in cases:
        resp = await gateway.post("/v1/auth/token", data=raw, headers={"Content-Type": "application/json"})
        error = await assert_error(resp, 400)
        assert "Traceback" not in error["message"]
    resp = await gateway.post("/v1/auth/token", json={"username": "x", "password": 3})
    assert "password" in (await assert_error(resp, 400))["message"]


async def test_wrong_role_is_403(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    resp = await gateway.post("/v1/events", json={}, headers=bearer(pair["access_token"]))
    error = await assert_error(resp, 403, "forbidden")
    assert "feed" in error["message"]
    resp = await gateway.get("/v1/imports/abc", headers=bearer(pair["access_token"]))
    await assert_error(resp, 403, "forbidden")
    resp = await gateway.get("/v1/admin/users", headers=bearer(pair["access_token"]))
    await assert_error(resp, 403, "forbidden")


async def test_api_key_authenticates_and_is_cached(gateway: Client, people: Accounts) -> None:
    name, key = await people.key("feed")

    def hits() -> float:
        return REGISTRY.get_sample_value("snapline_gateway_api_key_cache_total", {"outcome": "hit"}) or 0.0

    await gateway.post("/v1/events", json={"e": 1}, headers={"X-API-Key": key})
    before = hits()
    for _ in range(3):
        resp = await gateway.post("/v1/events", json={"e": 1}, headers={"X-API-Key": key})
        assert resp.status == 200
    assert (await resp.json())["headers"]["X-Snapline-Subject"] == f"key:{name}"
    assert hits() - before == 3
    resp = await gateway.get("/v1/plays", headers={"X-API-Key": key + "x"})
    await assert_error(resp, 401, "unauthorized")


async def test_legacy_scrypt_hash_is_upgraded_at_sign_in(gateway: Client, people: Accounts) -> None:
    import base64
    import hashlib

    name, _ = await people.user("viewer", "old secret")
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"old secret", salt=salt, n=2**14, r=8, p=1, dklen=32)
    legacy = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    await people.pool.execute("UPDATE gateway_users SET password_hash = $2 WHERE username = $1", name, legacy)
    await sign_in(gateway, name, "old secret")
    stored = await people.pool.fetchval("SELECT password_hash FROM gateway_users WHERE username = $1", name)
    assert stored.startswith("$argon2id$")
    await sign_in(gateway, name, "old secret")  # and the new hash verifies


async def test_second_instance_trusts_the_same_keys(start_gateway: StartGateway, people: Accounts) -> None:
    one, two = await start_gateway(), await start_gateway()
    name, password = await people.user("viewer")
    pair = await sign_in(one, name, password)
    assert (await two.get("/v1/teams", headers=bearer(pair["access_token"]))).status == 200
