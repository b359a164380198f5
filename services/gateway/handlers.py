"""Thin handlers of the gateway's own routes: sign-in, refresh, logout and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.gateway import accounts, tokens
from services.gateway.auth import redis_call, unauthorized
from services.gateway.keys import POSTGRES, PRINCIPAL, REDIS, REDIS_PREFIX
from services.gateway.openapi import document
from shared.errors import ApiError, bad_request
from shared.http import SETTINGS, json_response

MAX_AUTH_BODY = 64 * 1024


async def _json_object(request: web.Request, required: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object whose `required` fields are non-empty strings; 400 otherwise."""
    if (request.content_length or 0) > MAX_AUTH_BODY:
        raise ApiError(413, "payload_too_large", f"the body must be at most {MAX_AUTH_BODY} bytes")
    raw = await request.read()
    if not raw.strip() and not required:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    bad = [
        {"field": f, "error": "must be a non-empty string"}
        for f in required
        if not isinstance(body.get(f), str) or not body[f]
    ]
    if bad:
        raise bad_request(f"missing or invalid: {', '.join(b['field'] for b in bad)}", bad)
    return body


async def issue_token(request: web.Request) -> web.Response:
    """POST /v1/auth/token: username and password for an access and a refresh token."""
    body = await _json_object(request, ("username", "password"))
    pools = request.app[POSTGRES].get()
    user = await accounts.authenticate_user(pools.primary, body["username"], body["password"])
    if user is None:
        raise unauthorized("wrong username or password")
    redis = request.app[REDIS].get()
    prefix = request.app[REDIS_PREFIX]
    pair = tokens.issue(request.app[SETTINGS], redis, prefix, user.name, user.role)
    return json_response(await redis_call(pair))


async def refresh_token(request: web.Request) -> web.Response:
    """POST /v1/auth/refresh: spend a refresh token for a new pair, with the user's current role."""
    body = await _json_object(request, ("refresh_token",))
    redis = request.app[REDIS].get()
    prefix = request.app[REDIS_PREFIX]
    username = await redis_call(tokens.spend_refresh(redis, prefix, body["refresh_token"]))
    if username is None:
        raise unauthorized("the refresh token is unknown, expired or already used; sign in again")
    role = await accounts.user_role(request.app[POSTGRES].get().primary, username)
    if role is None:
        raise unauthorized("the user no longer exists")
    pair = tokens.issue(request.app[SETTINGS], redis, prefix, username, role)
    return json_response(await redis_call(pair))


async def logout(request: web.Request) -> web.Response:
    """POST /v1/auth/logout: revoke the access token presented and the refresh token in the body."""
    body = await _json_object(request, ())
    refresh = body.get("refresh_token")
    if refresh is not None and not isinstance(refresh, str):
        raise bad_request(
            "refresh_token must be a string", [{"field": "refresh_token", "error": "not a string"}]
        )
    principal = request[PRINCIPAL]
    assert principal is not None  # the route is guarded
    redis = request.app[REDIS].get()
    await redis_call(tokens.revoke(redis, request.app[REDIS_PREFIX], principal, refresh))
    return web.Response(status=204)


async def openapi(_: web.Request) -> web.Response:
    """GET /openapi.json."""
    return json_response(document())
