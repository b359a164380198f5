"""Who is calling (Bearer token or API key), whether they still may, whether their role may, and how often.

Every guarded request makes one Redis round trip: the gate script charges the caller's limits
and reads the revocation state its credential needs (the user's token generation and the token
family's dead mark, or the API keys' generation). Policy when Redis does not answer: limits fail
open (counted, logged); revocation falls back to PostgreSQL, so a revoked key or a stale token
is still refused; sign-in and refresh answer 503 because their families and attempt limits live
in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from prometheus_client import Counter

from services.gateway import accounts, tokens
from services.gateway.accounts import ROLES, Principal
from services.gateway.keys import (
    ADMISSION,
    API_KEY_CACHE,
    POSTGRES,
    PRINCIPAL,
    RATE_LIMITER,
    REDIS,
    TOKENS,
    VERDICT,
)
from services.gateway.ratelimit import REDIS_ERRORS, Limit, Verdict, credit_key
from shared.errors import ApiError
from shared.http import SETTINGS
from shared.logging import bind_contextvars

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC: frozenset[str] = frozenset()
ANY_ROLE = frozenset(ROLES)
WRITERS = frozenset({"feed", "admin"})
ADMIN = frozenset({"admin"})
KEYS_GENERATION = "keys-gen"  # bumped whenever a key is revoked or replaced
UNKNOWN_GENERATION = b"unknown: redis was away"  # never a value Redis holds
SPECULATIVE = Counter(
    "snapline_gateway_speculative_total",
    "Proxied reads sent upstream while their rate-limit and revocation check ran, by its outcome",
    ["outcome"],
)


@dataclass(frozen=True)
class Guard:
    """What a route asks of its caller: the roles that may call it, and what a call costs."""

    roles: frozenset[str]
    cost: int = 1
    query_token: bool = False  # browsers cannot set headers on a WebSocket


def unauthorized(message: str, invalid_token: bool = False) -> ApiError:
    """401 with the Bearer challenge RFC 6750 asks for."""
    challenge = 'Bearer realm="snapline"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def client_ip(request: web.Request) -> str:
    """The caller's address: the peer, or X-Forwarded-For's nearest untrusted hop behind trusted proxies."""
    peer = request.remote or ""
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [
        h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()
    ]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _within(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def _bearer(request: web.Request, query_token: bool) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return request.query.get("access_token") if query_token else None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be 'Bearer <access token>'")
    return token.strip()


async def _by_key(request: web.Request, key: str, ip: str) -> Principal:
    cache = request.app[API_KEY_CACHE]
    digest = accounts.key_digest(key)
    hit, principal = cache.peek(digest)
    if not hit:
        # A miss costs a PostgreSQL lookup: an address over its failure budget gets none.
        await _refuse_if_failing(request, ip)
        principal = await cache.load(digest, _key_loader(request))
    if principal is None:
        raise unauthorized("the X-API-Key is not a known key (or it was revoked)")
    return principal


def _key_loader(request: web.Request) -> Callable[[str], Awaitable[Principal | None]]:
    async def load(digest: str) -> Principal | None:
        return await accounts.find_key(request.app[POSTGRES].get().primary, digest)

    return load


async def _refuse_if_failing(request: web.Request, ip: str) -> None:
    settings = request.app[SETTINGS]
    try:
        verdict = await request.app[RATE_LIMITER].gate(
            [Limit("authfail", ip, settings.auth_failures_per_minute, 0)]
        )
    except REDIS_ERRORS as exc:
        request.app[RATE_LIMITER].failed_open(exc)
        return
    if verdict.remaining <= 0:
        raise request.app[RATE_LIMITER].refusal(
            Verdict(False, verdict.limit, 0, verdict.reset, max(1, verdict.reset), [], "authfail"),
            "failed authentications from this address",
        )


def identify(request: web.Request, query_token: bool) -> tuple[str | None, str | None]:
    """The credential presented: (API key, None), (None, bearer token) or (None, None)."""
    key = request.headers.get("X-API-Key")
    if key:
        return key, None
    return None, _bearer(request, query_token)


async def authenticate(request: web.Request, ip: str, query_token: bool) -> Principal:
    """The caller from its credential, checked locally (signature, key cache); ApiError 401 otherwise."""
    key, token = identify(request, query_token)
    if key:
        return await _by_key(request, key, ip)
    if not token:
        raise unauthorized("this route needs 'Authorization: Bearer <access token>' or an X-API-Key header")
    try:
        return request.app[TOKENS].decode(token)
    except tokens.InvalidToken as exc:
        raise unauthorized(str(exc), invalid_token=True) from None


def _reads(request: web.Request, principal: Principal | None) -> list[str]:
    if principal is None:
        return []
    tk = request.app[TOKENS]
    if principal.kind == "key":
        return [tk.prefix + KEYS_GENERATION]
    assert principal.family is not None
    return [tk.generation_key(principal.name), tk.dead_key(principal.family)]


async def still_valid(
    request: web.Request, principal: Principal, values: list[bytes | None] | None
) -> Principal:
    """The principal if its credential has not been revoked; `values` are the reads (None: Redis is away)."""
    db = request.app[POSTGRES].get().primary
    if principal.kind == "key":
        cache = request.app[API_KEY_CACHE]
        if values is None:
            # Redis is away: revocations made meanwhile cannot bump the keys' generation, so the
            # cache is forgotten now and refilled from PostgreSQL once Redis answers again.
            cache.sync(UNKNOWN_GENERATION)
            found = await accounts.find_key(db, accounts.key_digest(request.headers["X-API-Key"]))
        elif cache.sync(values[0]):
            found = principal
        else:
            found = await cache.load(accounts.key_digest(request.headers["X-API-Key"]), _key_loader(request))
        if found is None:
            raise unauthorized("the X-API-Key was revoked")
        return found
    generation = int(values[0]) if values and values[0] is not None else None
    if values and values[1] is not None:
        raise unauthorized("the session was revoked (its refresh token was reused); sign in again", True)
    if generation is None:
        user = await accounts.find_user(db, principal.name)
        generation = None if user is None or user.disabled else user.token_generation
        if generation is not None and values is not None:
            await _cache_generation(request, principal.name, generation)
    if generation != principal.generation:
        raise unauthorized("the access token was revoked; sign in again", invalid_token=True)
    return principal


async def _cache_generation(request: web.Request, username: str, generation: int) -> None:
    tk = request.app[TOKENS]
    with contextlib.suppress(*REDIS_ERRORS):  # the cache is an optimisation; PostgreSQL answered
        await (
            request.app[REDIS]
            .get()
            .set(tk.generation_key(username), generation, ex=tokens.GEN_CACHE_TTL, nx=True)
        )


async def check(request: web.Request, guard: Guard, speculate: bool = False) -> Principal | None:
    """Authenticate, rate-limit and authorise one request; the principal (None on public routes).

    With `speculate` (proxied reads), a caller whose credential checks out locally, whose role
    may call the route and who has ample budget (ratelimit.Credit) goes on at once: the gate and
    the revocation check run meanwhile as `request[ADMISSION]`, which `admitted` awaits before
    anything of the answer is relayed.
    """
    settings = request.app[SETTINGS]
    ip = client_ip(request)
    principal: Principal | None = None
    failure: ApiError | None = None
    if guard.roles:
        try:
            principal = await authenticate(request, ip, guard.query_token)
        except ApiError as exc:
            if exc.status == 429:
                raise
            failure = exc
    if failure is not None:
        limits = [Limit("authfail", ip, settings.auth_failures_per_minute)]
    else:
        limits = [Limit("ip", ip, settings.rate_limit_ip_per_minute, guard.cost)]
        if principal is not None:
            limits.insert(
                0, Limit(principal.kind, principal.name, settings.rate_limit_per_minute, guard.cost)
            )
    if (
        speculate
        and principal is not None
        and principal.role in guard.roles
        and request.app[RATE_LIMITER].credit.spend(credit_key(limits), guard.cost)
    ):
        bind_contextvars(subject=principal.subject, role=principal.role)
        request[ADMISSION] = asyncio.create_task(_speculative(request, guard, limits, principal))
        return principal
    return await _admit(request, guard, limits, principal, failure)


async def _speculative(
    request: web.Request, guard: Guard, limits: list[Limit], principal: Principal
) -> Principal | None:
    try:
        admitted = await _admit(request, guard, limits, principal, None)
    except BaseException:
        SPECULATIVE.labels("refused").inc()
        raise
    SPECULATIVE.labels("admitted").inc()
    return admitted


async def _admit(
    request: web.Request,
    guard: Guard,
    limits: list[Limit],
    principal: Principal | None,
    failure: ApiError | None,
) -> Principal | None:
    """Charge `limits`, then refuse, or check the principal is not revoked and may call the route."""
    limiter = request.app[RATE_LIMITER]
    values: list[bytes | None] | None
    try:
        verdict = await limiter.gate(limits, _reads(request, principal))
        values = verdict.values
        request[VERDICT] = verdict
    except REDIS_ERRORS as exc:
        limiter.failed_open(exc)
        verdict, values = None, None
    if verdict is not None and not verdict.allowed:
        what = "failed authentications from this address" if failure else "requests"
        raise limiter.refusal(verdict, what)
    if failure is not None:
        raise failure
    if principal is None:
        return None
    principal = await still_valid(request, principal, values)
    bind_contextvars(subject=principal.subject, role=principal.role)
    if principal.role not in guard.roles:
        allowed = ", ".join(sorted(guard.roles))
        message = (
            f"role {principal.role!r} may not {request.method} {request.path}; it needs one of: {allowed}"
        )
        raise ApiError(403, "forbidden", message)
    return principal


async def admitted(request: web.Request) -> None:
    """Wait for a speculative request's gate (if it has one): returns once admitted, raises its refusal."""
    task = request.pop(ADMISSION, None)
    if task is not None:
        await task


def guarded(handler: Handler, guard: Guard, speculate: bool = False) -> Handler:
    """`handler` behind `guard`: authentication (unless public), revocation, rate limits and role.

    `speculate`: the handler is an idempotent read that awaits `admitted` before it answers, so
    the gate may run while it works (see `check`).
    """

    async def run(request: web.Request) -> web.StreamResponse:
        request[PRINCIPAL] = await check(request, guard, speculate)
        if ADMISSION not in request:
            return await handler(request)
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            task = request.pop(ADMISSION, None)
            if task is not None:
                task.cancel()
            raise
        except BaseException:
            await admitted(request)  # a refusal outranks whatever went wrong upstream
            raise
        await admitted(request)
        return response

    run.guard = guard  # type: ignore[attr-defined]  # the route table and its tests read it
    return run


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: RateLimit-* on every response of a guarded route, errors included."""
    verdict = request.get(VERDICT)
    if verdict is not None:
        for name, value in verdict.headers().items():
            response.headers.setdefault(name, value)
