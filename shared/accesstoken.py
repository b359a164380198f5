"""Verifying the gateway's access tokens (RFC 8725 / RFC 9068), by any service, from public keys alone.

The gateway signs access tokens with Ed25519 (`alg` EdDSA) and serves its public keys at
`GET /.well-known/jwks.json`. A verifier pins the algorithm, picks the key by the token's `kid`
from the key set it holds (never from the token itself), and checks the issuer, the audience, the
times and the token type, so an ID token, a refresh token or a token of another deployment never
passes as an access token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import jwt
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"  # RFC 9068's media type for JWT access tokens, in the `typ` header
REQUIRED = ("iss", "aud", "sub", "role", "exp", "iat", "nbf", "jti")
LEEWAY = 5  # seconds of clock skew tolerated between instances


class InvalidToken(Exception):
    """The access token is malformed, badly signed, of the wrong type, expired or not yet valid."""


def verify(token: str, keys: Mapping[str, Any], issuer: str, audience: str) -> dict[str, Any]:
    """The claims of a valid access token; InvalidToken saying why otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"the access token is not valid: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"the access token must be signed with {ALGORITHM}")
    if header.get("typ") != TOKEN_TYPE:
        raise InvalidToken(f"the token is not an access token (typ must be {TOKEN_TYPE})")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("the access token was signed with a key this server does not hold")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY,
            options={"require": list(REQUIRED)},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired; refresh it or sign in again") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"the access token is not valid: {exc}") from None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("role"), str):
        raise InvalidToken("the access token's sub and role must be strings")
    return claims


def keys_from_jwks(document: Mapping[str, Any]) -> dict[str, Any]:
    """Public keys by kid from a JWKS document; keys of other types or algorithms are ignored."""
    found: dict[str, Any] = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("alg", ALGORITHM) != ALGORITHM or not isinstance(jwk.get("kid"), str):
            continue
        found[jwk["kid"]] = OKPAlgorithm.from_jwk(jwk)
    return found


class JwksVerifier:
    """Verifies access tokens with the keys served at a JWKS URL; no secret is needed.

    Keys are fetched on first use and again when a token names an unknown kid (a rotation),
    at most once per `min_refresh` seconds, so forged kids cannot make it hammer the gateway.
    """

    def __init__(
        self, url: str, issuer: str, audience: str, session: aiohttp.ClientSession, min_refresh: float = 30.0
    ) -> None:
        self.url = url
        self.issuer = issuer
        self.audience = audience
        self.min_refresh = min_refresh
        self._session = session
        self._keys: dict[str, Any] = {}
        self._fetched_at = -min_refresh
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"JwksVerifier(url={self.url!r}, keys={sorted(self._keys)})"

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token (InvalidToken otherwise), refreshing keys on a new kid."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the access token is not valid: {exc}") from None
        if kid not in self._keys:
            await self._refresh()
        return verify(token, self._keys, self.issuer, self.audience)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.min_refresh:
                return
            self._fetched_at = time.monotonic()
            async with self._session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                resp.raise_for_status()
                self._keys = keys_from_jwks(await resp.json())
