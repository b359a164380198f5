"""Thin handlers of the admin API (role admin): users and API keys."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from services.gateway import accounts, revocations
from services.gateway.auditing import note
from services.gateway.keys import POSTGRES, PRINCIPAL
from services.gateway.models import NewKey, NewUser, UserChange, decode
from shared.errors import ApiError, bad_request, not_found
from shared.http import json_response
from shared.logging import get_logger

log = get_logger(__name__)
PAGE = 100
MAX_PAGE = 500


def _page(request: web.Request) -> tuple[str | None, int]:
    """The keyset cursor (opaque: base64url of the last name seen) and the page size."""
    unknown = set(request.query) - {"cursor", "limit"}
    if unknown:
        raise bad_request(f"unknown parameter: {', '.join(sorted(unknown))}")
    raw_limit = request.query.get("limit", str(PAGE))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise bad_request(f"limit must be an integer from 1 to {MAX_PAGE}", [{"field": "limit"}])
    cursor = request.query.get("cursor")
    after = None
    if cursor:
        try:
            after = base64.b64decode(
                cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True
            ).decode()
            accounts.check_name(after)  # user names and key ids alike are names
        except (binascii.Error, ValueError):
            raise bad_request("cursor is not one this API gave out", [{"field": "cursor"}]) from None
        if _encode(after) != cursor:
            raise bad_request("cursor is not one this API gave out", [{"field": "cursor"}])
    return after, int(raw_limit)


def _encode(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).rstrip(b"=").decode()


def _next(names: list[str], limit: int) -> str | None:
    if len(names) < limit:
        return None
    return _encode(names[-1])


def _db(request: web.Request) -> object:
    return request.app[POSTGRES].get().primary


def _audit(request: web.Request, action: str, target: str, **fields: object) -> None:
    """Log the change and name it for the audit log's record of this request."""
    actor = request[PRINCIPAL]
    log.info("admin_action", action=action, actor=actor.subject if actor else None, target=target, **fields)
    note(request, target, **fields)


async def create_user(request: web.Request) -> web.Response:
    """POST /v1/admin/users."""
    body = decode(await request.read(), NewUser)
    note(request, body.username, role=body.role)
    try:
        user = await accounts.create_user(_db(request), body.username, body.password, body.role)
    except accounts.Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    _audit(request, "user_created", user.username, role=user.role)
    return json_response(user.public(), status=201)


async def list_users(request: web.Request) -> web.Response:
    """GET /v1/admin/users."""
    after, limit = _page(request)
    users = await accounts.list_users(_db(request), after, limit)
    return json_response(
        {"items": [u.public() for u in users], "next_cursor": _next([u.username for u in users], limit)}
    )


async def update_user(request: web.Request) -> web.Response:
    """PATCH /v1/admin/users/{username}: any change ends the user's sessions everywhere."""
    body = decode(await request.read(), UserChange)
    if body.password is None and body.role is None and body.disabled is None:
        raise bad_request("give at least one of: password, role, disabled")
    username = request.match_info["username"]
    changed = [f for f in ("password", "role", "disabled") if getattr(body, f) is not None]
    note(request, username, changed=changed)
    try:
        user = await accounts.update_user(_db(request), username, body.password, body.role, body.disabled)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if user is None:
        raise not_found(f"no user named {username!r}")
    await revocations.revoke_user(request.app, user.username, user.token_generation)
    _audit(request, "user_changed", username, changed=changed, role=user.role, disabled=user.disabled)
    return json_response(user.public())


async def create_key(request: web.Request) -> web.Response:
    """POST /v1/admin/keys: the key is in this answer and nowhere else, ever."""
    body = decode(await request.read(), NewKey)
    note(request, None, name=body.name, role=body.role)
    try:
        key, secret, replaced = await accounts.create_key(
            request.app[POSTGRES].get().primary, body.name, body.role
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if replaced:
        await revocations.revoke_keys(request.app, [replaced])
    _audit(
        request, "key_created", key.key_id, name=key.name, role=key.role, prefix=key.prefix, replaced=replaced
    )
    out = {
        "key_id": key.key_id, "name": key.name, "role": key.role, "key": secret,
        "prefix": key.prefix, "created_at": key.created_at, "replaced_key_id": replaced,
    }  # fmt: skip
    return json_response(out, status=201, headers={"Cache-Control": "no-store"})


async def list_keys(request: web.Request) -> web.Response:
    """GET /v1/admin/keys."""
    after, limit = _page(request)
    keys = await accounts.list_keys(_db(request), after, limit)
    return json_response(
        {"items": [k.public() for k in keys], "next_cursor": _next([k.key_id for k in keys], limit)}
    )


async def revoke_key(request: web.Request) -> web.Response:
    """DELETE /v1/admin/keys/{key_id}: refused on every instance from the next request on."""
    key_id = request.match_info["key_id"]
    if not await accounts.revoke_key(_db(request), key_id):
        raise not_found(f"no active key with id {key_id!r}")
    await revocations.revoke_keys(request.app, [key_id])
    _audit(request, "key_revoked", key_id)
    return web.Response(status=204)
