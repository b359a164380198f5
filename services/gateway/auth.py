"""Who is calling (Bearer token or API key), whether their role may, and how often they may."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from redis.exceptions import RedisError

from services.gateway import accounts, tokens
from services.gateway.accounts import ROLES, Principal
from services.gateway.keys import API_KEY_CACHE, POSTGRES, PRINCIPAL, RATE_LIMITER, REDIS, REDIS_PREFIX
from shared.deps import Unavailable
from shared.errors import ApiError
from shared.http import SETTINGS
from shared.logging import bind_contextvars

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC: frozenset[str] = frozenset()
ANY_ROLE = frozenset(ROLES)
WRITERS = frozenset({"feed", "admin"})


def unauthorized(message: str, invalid_token: bool = False) -> ApiError:
    """401 with the Bearer challenge RFC 6750 asks for."""
    challenge = 'Bearer realm="snapline"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


async def redis_call(awaitable: Awaitable[T]) -> T:
    """Await a Redis command; a dropped connection becomes Unavailable, hence 503 + Retry-After."""
    try:
        return await awaitable
    except (RedisError, OSError) as exc:
        raise Unavailable("redis") from exc


def _bearer(request: web.Request, query_token: bool) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return request.query.get("access_token") if query_token else None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be 'Bearer <access token>'")
    return token.strip()


async def _by_key(request: web.Request, key: str) -> Principal:
    pools = request.app[POSTGRES].get()

    async def load(digest: str) -> Principal | None:
        return await accounts.find_api_key(pools.primary, digest)

    principal = await request.app[API_KEY_CACHE].get(accounts.key_digest(key), load)
    if principal is None:
        raise unauthorized("the X-API-Key is not a known key")
    return principal


async def authenticate(request: web.Request, query_token: bool = False) -> Principal:
    """The caller, from X-API-Key or a Bearer access token; ApiError 401 when neither is valid."""
    key = request.headers.get("X-API-Key")
    if key:
        return await _by_key(request, key)
    token = _bearer(request, query_token)
    if not token:
        raise unauthorized("this route needs 'Authorization: Bearer <access token>' or an X-API-Key header")
    try:
        principal = tokens.decode(request.app[SETTINGS], token)
    except tokens.InvalidToken as exc:
        raise unauthorized(str(exc), invalid_token=True) from None
    redis = request.app[REDIS].get()
    # Fail closed: a token revoked at logout must not work again while Redis is away.
    if await redis_call(tokens.is_revoked(redis, request.app[REDIS_PREFIX], principal)):
        raise unauthorized("the access token was revoked at logout; sign in again", invalid_token=True)
    return principal


def guarded(handler: Handler, roles: frozenset[str], query_token: bool = False) -> Handler:
    """`handler` behind authentication (unless `roles` is PUBLIC), the role check and the rate limit."""

    async def guard(request: web.Request) -> web.StreamResponse:
        principal = await authenticate(request, query_token) if roles else None
        if principal is not None:
            bind_contextvars(subject=principal.subject, role=principal.role)
        # Unauthenticated routes (sign-in, public pages) are limited per client address.
        await request.app[RATE_LIMITER].hit(principal.subject if principal else f"ip:{request.remote}")
        if principal is not None and principal.role not in roles:
            allowed = ", ".join(sorted(roles))
            message = (
                f"role {principal.role!r} may not {request.method} {request.path}; it needs one of: {allowed}"
            )
            raise ApiError(403, "forbidden", message)
        request[PRINCIPAL] = principal
        return await handler(request)

    return guard
