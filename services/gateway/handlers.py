"""Thin handlers of the gateway's own sign-in routes: token, refresh, logout and the JWKS."""

from __future__ import annotations

from aiohttp import web

from services.gateway import accounts, revocations
from services.gateway.auth import client_ip, unauthorized
from services.gateway.keys import KEYSET, POSTGRES, PRINCIPAL, RATE_LIMITER, REDIS, TOKENS
from services.gateway.models import LogoutRequest, RefreshRequest, SignIn, decode
from services.gateway.ratelimit import REDIS_ERRORS, Limit
from shared.deps import Unavailable
from shared.errors import bad_request
from shared.http import SETTINGS, json_response
from shared.logging import get_logger

log = get_logger(__name__)


async def _charge_sign_in(request: web.Request, username: str) -> None:
    """Sign-in attempts per address, per account from that address, per account: 429 past any."""
    s = request.app[SETTINGS]
    ip = client_ip(request)
    limits = [
        Limit("signin-ip", ip, s.signin_ip_per_minute),
        Limit("signin-account-ip", f"{username}|{ip}", s.signin_account_ip_per_minute),
        Limit("signin-account", username, s.signin_account_per_minute),
    ]
    limiter = request.app[RATE_LIMITER]
    try:
        verdict = await limiter.gate(limits)
    except REDIS_ERRORS as exc:
        # Fail closed: without the attempt counts, sign-in would allow unlimited guessing.
        raise Unavailable("redis") from exc
    if not verdict.allowed:
        raise limiter.refusal(verdict, "sign-in attempts")


async def issue_token(request: web.Request) -> web.Response:
    """POST /v1/auth/token: username and password for an access and a refresh token."""
    body = decode(await request.read(), SignIn)
    await _charge_sign_in(request, body.username)
    user = await accounts.authenticate_user(request.app[POSTGRES].get().primary, body.username, body.password)
    if user is None:
        raise unauthorized("wrong username or password, or the user is disabled")
    try:
        pair = await request.app[TOKENS].sign_in(
            request.app[REDIS].get(), user.username, user.role, user.token_generation
        )
    except REDIS_ERRORS as exc:
        raise Unavailable("redis") from exc
    return json_response(pair)


async def refresh_token(request: web.Request) -> web.Response:
    """POST /v1/auth/refresh: spend a refresh token for a new pair, with the user's current role."""
    body = decode(await request.read(), RefreshRequest)
    tokens = request.app[TOKENS]
    redis = request.app[REDIS].get()
    try:
        spent = await tokens.spend(redis, body.refresh_token)
    except REDIS_ERRORS as exc:
        raise Unavailable("redis") from exc
    if spent.outcome == 0:
        raise unauthorized("the refresh token is unknown, expired or revoked; sign in again")
    if spent.outcome < 0:
        log.warning("refresh_token_reused", user=spent.user, family=spent.family[:6])
        raise unauthorized("the refresh token was already used, so its session is revoked; sign in again")
    assert spent.user is not None
    user = await accounts.find_user(request.app[POSTGRES].get().primary, spent.user)
    if user is None or user.disabled or user.token_generation != spent.generation:
        await tokens.kill_family(redis, spent.family)
        raise unauthorized("the session was revoked (password, role or account changed); sign in again")
    return json_response(tokens.rotated_pair(spent, user.role))


async def logout(request: web.Request) -> web.Response:
    """POST /v1/auth/logout: every session of the caller ends (its tokens everywhere are refused)."""
    decode(await request.read(), LogoutRequest)  # refresh_token is accepted for older clients
    principal = request[PRINCIPAL]
    assert principal is not None  # the route is guarded
    if principal.kind != "user":
        raise bad_request(
            "an API key does not sign out: an admin revokes it (DELETE /v1/admin/keys/{key_id})"
        )
    generation = await accounts.bump_generation(request.app[POSTGRES].get().primary, principal.name)
    if generation is not None:
        await revocations.revoke_user(request.app, principal.name, generation)
    return web.Response(status=204)


async def jwks(request: web.Request) -> web.Response:
    """GET /.well-known/jwks.json: the public keys that verify access tokens."""
    return json_response(request.app[KEYSET].jwks(), headers={"Cache-Control": "public, max-age=300"})


async def openapi(_: web.Request) -> web.Response:
    """GET /openapi.json."""
    from services.gateway.openapi import document  # the document is built from the route table

    return json_response(document())


async def docs(_: web.Request) -> web.Response:
    """GET /docs: the API reference, rendered in the browser from /openapi.json by the project's own page."""
    from services.gateway.openapi import docs_page

    return web.Response(text=docs_page(), content_type="text/html", headers={"Cache-Control": "no-cache"})
