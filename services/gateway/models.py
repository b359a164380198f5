"""The bodies the gateway's own routes take and give, as msgspec Structs (the OpenAPI schemas come from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from shared.errors import ApiError, bad_request

Role = Literal["admin", "feed", "analyst", "viewer"]
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
MAX_BODY = 64 * 1024
S = TypeVar("S")


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Password


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


class LogoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(max_length=200)] | None = None


class TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    username: Name
    password: Password
    role: Role


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    password: Password | None = None
    role: Role | None = None
    disabled: bool | None = None


class UserOut(msgspec.Struct):
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserList(msgspec.Struct):
    items: list[UserOut]
    next_cursor: str | None


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    role: Role


class KeyCreated(msgspec.Struct):
    key_id: str
    name: str
    role: Role
    key: str
    prefix: str
    created_at: datetime
    replaced_key_id: str | None


class KeyOut(msgspec.Struct):
    key_id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    revoked_at: datetime | None


class KeyList(msgspec.Struct):
    items: list[KeyOut]
    next_cursor: str | None


class AuditRecord(msgspec.Struct):
    id: int
    at: datetime
    actor: str  # user:<name> or key:<name>
    actor_key_id: str | None
    role: str
    action: str
    target: str | None
    address: str
    request_id: str
    status: int
    detail: dict[str, Any]


class AuditList(msgspec.Struct):
    items: list[AuditRecord]
    next_cursor: str | None


def _strings(value: Any, path: str = "$") -> str | None:
    """The path of the first string holding a NUL, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            found = _strings(getattr(value, field), f"{path}.{field}")
            if found:
                return found
    return None


def decode(raw: bytes, into: type[S]) -> S:
    """The body as `into`; ApiError 400 naming the field for bad JSON, a wrong field, NUL or deep nesting."""
    if len(raw) > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"the body must be at most {MAX_BODY} bytes")
    if not raw.strip():
        raw = b"{}"
    try:
        body = msgspec.json.decode(raw, type=into)
    except msgspec.ValidationError as exc:
        raise bad_request(f"invalid body: {exc}", [{"error": str(exc)}]) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    nul = _strings(body)
    if nul:
        raise bad_request(f"invalid body: NUL characters are not allowed - at `{nul}`", [{"field": nul}])
    return body
