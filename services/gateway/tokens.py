"""Access tokens (JWT HS256), single-use refresh tokens and the revocation list, kept in Redis."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

import jwt
import redis.asyncio as aioredis

from services.gateway.accounts import Principal
from shared.config import Settings

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The access token is missing a claim, badly signed, expired or revoked."""


def _refresh_key(prefix: str, token: str) -> str:
    # Stored by digest: reading Redis does not hand out working refresh tokens.
    return f"{prefix}refresh:{hashlib.sha256(token.encode()).hexdigest()}"


def _revoked_key(prefix: str, jti: str) -> str:
    return f"{prefix}revoked:{jti}"


def access_token(settings: Settings, username: str, role: str) -> str:
    now = int(time.time())
    claims = {
        "sub": username,
        "role": role,
        "iat": now,
        "exp": now + settings.access_token_ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


async def issue(
    settings: Settings, redis: aioredis.Redis, prefix: str, username: str, role: str
) -> dict[str, Any]:
    """A new access token and refresh token for `username`, in the shape of the public API."""
    refresh = secrets.token_urlsafe(32)
    await redis.set(_refresh_key(prefix, refresh), username.encode(), ex=settings.refresh_token_ttl)
    return {
        "access_token": access_token(settings, username, role),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl,
    }


async def spend_refresh(redis: aioredis.Redis, prefix: str, token: str) -> str | None:
    """The username the refresh token was issued to, spending it; None when unknown or spent."""
    value = await redis.getdel(_refresh_key(prefix, token))
    return value.decode() if isinstance(value, bytes) else value


def decode(settings: Settings, token: str) -> Principal:
    """The principal an access token names, or InvalidToken saying why it is not accepted."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "exp", "iat", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired; refresh it or sign in again") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"the access token is not valid: {exc}") from None
    return Principal("user", str(claims["sub"]), str(claims["role"]), str(claims["jti"]), int(claims["exp"]))


async def is_revoked(redis: aioredis.Redis, prefix: str, principal: Principal) -> bool:
    """Whether the principal's access token was revoked at logout (API keys never are)."""
    if principal.token_id is None:
        return False
    return bool(await redis.exists(_revoked_key(prefix, principal.token_id)))


async def revoke(redis: aioredis.Redis, prefix: str, principal: Principal, refresh: str | None) -> None:
    """Deny the principal's access token until it expires and spend `refresh` if given."""
    if refresh:
        await redis.delete(_refresh_key(prefix, refresh))
    if principal.token_id and principal.expires_at:
        ttl = principal.expires_at - int(time.time())
        if ttl > 0:
            await redis.set(_revoked_key(prefix, principal.token_id), b"1", ex=ttl)
