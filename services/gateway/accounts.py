"""Users, API keys and roles: hashing, storage and lookup (no transport code).

The gateway owns `gateway_users` and `gateway_keys`; the admin API and the set-up's bootstrap
write them through this module and nothing else does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Gauge

ROLES = ("admin", "feed", "analyst", "viewer")
ALLOWED_ROLES = "admin, feed, analyst or viewer"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
KEY_PREFIX = "snp_"
MAX_PASSWORD = 1024  # characters; argon2 takes any length, a megabyte of "password" is an attack
# argon2id with argon2-cffi's defaults (RFC 9106's second recommendation: t=3, 64 MiB, p=4),
# about 60 ms here. A hash runs in a thread; HASHING bounds how many run at once (memory).
_HASHER = PasswordHasher()
HASHES = Gauge("snapline_gateway_password_hashes", "argon2id hashes running or waiting for a slot", ["state"])
HASHING = asyncio.Semaphore(2)  # resized by configure_hashing


class Conflict(Exception):
    """The name is taken."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user or an API key, and its role."""

    kind: Literal["user", "key"]
    name: str
    role: str
    token_id: str | None = None  # the access token's jti
    expires_at: int | None = None  # the access token's exp (API keys do not expire)
    family: str | None = None  # the refresh-token family the access token was issued from
    generation: int = 0  # the user's token generation when the token was issued
    key_id: str | None = None

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    token_generation: int
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at,
        }


def check_role(role: str) -> str:
    """The role itself, or ValueError with a sentence naming the allowed roles."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: the role must be {ALLOWED_ROLES}")
    return role


def check_name(name: str) -> str:
    """The name itself, or ValueError saying what a name may hold."""
    if not _NAME.match(name):
        raise ValueError(
            f"invalid name {name!r}: use 1-64 letters, digits or _ . @ -, starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not password:
        raise ValueError("the password must not be empty")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password must be at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (argon2id, or the scrypt hashes of earlier versions)."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash predates the current algorithm or parameters."""
    return stored.startswith("scrypt$") or _HASHER.check_needs_rehash(stored)


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


async def _in_thread(fn: Any, *args: Any) -> Any:
    waiting = HASHES.labels("waiting")
    waiting.inc()
    try:
        await HASHING.acquire()
    finally:
        waiting.dec()
    running = HASHES.labels("running")
    running.inc()
    try:
        return await asyncio.to_thread(fn, *args)
    finally:
        running.dec()
        HASHING.release()


# A hash to check against when the user does not exist, so timing does not reveal usernames.
_DECOY = hash_password(secrets.token_urlsafe(16))
_USER_COLUMNS = "username, role, disabled, token_generation, created_at, updated_at"


def _user(row: Any) -> User:
    return User(
        row["username"], row["role"], row["disabled"], row["token_generation"],
        row["created_at"], row["updated_at"],
    )  # fmt: skip


async def create_user(db: Any, username: str, password: str, role: str) -> User:
    """A new user; Conflict when the name is taken, ValueError for a bad name, role or password."""
    check_name(username)
    check_role(role)
    check_password(password)
    hashed = await _in_thread(hash_password, password)
    row = await db.fetchrow(
        "INSERT INTO gateway_users (username, password_hash, role) VALUES ($1, $2, $3)"
        f" ON CONFLICT (username) DO NOTHING RETURNING {_USER_COLUMNS}",
        username,
        hashed,
        role,
    )
    if row is None:
        raise Conflict(f"a user named {username!r} exists already")
    return _user(row)


async def update_user(
    db: Any,
    username: str,
    password: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
) -> User | None:
    """Change what is given; any change bumps the user's token generation. None when no such user."""
    if role is not None:
        check_role(role)
    hashed = await _in_thread(hash_password, check_password(password)) if password is not None else None
    row = await db.fetchrow(
        "UPDATE gateway_users SET password_hash = coalesce($2, password_hash), role = coalesce($3, role),"
        " disabled = coalesce($4, disabled), token_generation = token_generation + 1, updated_at = now()"
        f" WHERE username = $1 RETURNING {_USER_COLUMNS}",
        username,
        hashed,
        role,
        disabled,
    )
    return _user(row) if row else None


async def list_users(db: Any, after: str | None, limit: int) -> list[User]:
    rows = await db.fetch(
        f"SELECT {_USER_COLUMNS} FROM gateway_users WHERE username > coalesce($1, '')"
        " ORDER BY username LIMIT $2",
        after,
        limit,
    )
    return [_user(r) for r in rows]


async def authenticate_user(db: Any, username: str, password: str) -> User | None:
    """The user when the password matches and the user is enabled, else None; rehashes old hashes."""
    row = await db.fetchrow(
        f"SELECT password_hash, {_USER_COLUMNS} FROM gateway_users WHERE username = $1", username
    )
    stored = row["password_hash"] if row else _DECOY
    ok = await _in_thread(verify_password, password, stored)
    if not ok or row is None or row["disabled"]:
        return None
    if needs_rehash(stored):
        hashed = await _in_thread(hash_password, password)
        await db.execute(
            "UPDATE gateway_users SET password_hash = $2 WHERE username = $1 AND password_hash = $3",
            username,
            hashed,
            stored,
        )
    return _user(row)


async def find_user(db: Any, username: str) -> User | None:
    row = await db.fetchrow(f"SELECT {_USER_COLUMNS} FROM gateway_users WHERE username = $1", username)
    return _user(row) if row else None


async def bump_generation(db: Any, username: str) -> int | None:
    """Invalidate every token of the user (logout everywhere); the new generation."""
    gen: int | None = await db.fetchval(
        "UPDATE gateway_users SET token_generation = token_generation + 1 WHERE username = $1"
        " RETURNING token_generation",
        username,
    )
    return gen


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_KEY_COLUMNS = "key_id, name, role, prefix, created_at, last_used_at, revoked_at"


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row["key_id"], row["name"], row["role"], row["prefix"],
        row["created_at"], row["last_used_at"], row["revoked_at"],
    )  # fmt: skip


async def create_key(db: Any, name: str, role: str) -> tuple[ApiKey, str, str | None]:
    """A new key for `name`, the key itself (shown only now) and the id of the key it replaced."""
    check_name(name)
    check_role(role)
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    async with db.acquire() as conn, conn.transaction():
        replaced = await conn.fetchval(
            "UPDATE gateway_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING key_id",
            name,
        )
        row = await conn.fetchrow(
            "INSERT INTO gateway_keys (key_id, name, prefix, key_sha256, role) VALUES ($1, $2, $3, $4, $5)"
            f" RETURNING {_KEY_COLUMNS}",
            key_id,
            name,
            f"{KEY_PREFIX}{key_id}",
            key_digest(key),
            role,
        )
    return _key(row), key, replaced


async def list_keys(db: Any, after: str | None, limit: int) -> list[ApiKey]:
    rows = await db.fetch(
        f"SELECT {_KEY_COLUMNS} FROM gateway_keys WHERE key_id > coalesce($1, '') ORDER BY key_id LIMIT $2",
        after,
        limit,
    )
    return [_key(r) for r in rows]


async def revoke_key(db: Any, key_id: str) -> bool:
    """Revoke the key; False when there is no such active key."""
    done = await db.fetchval(
        "UPDATE gateway_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING true",
        key_id,
    )
    return bool(done)


async def find_key(db: Any, digest: str) -> Principal | None:
    """The active key's principal by the key's SHA-256, or None when no active key has it."""
    row = await db.fetchrow(
        "SELECT key_id, name, role FROM gateway_keys WHERE key_sha256 = $1 AND revoked_at IS NULL", digest
    )
    return Principal("key", row["name"], row["role"], key_id=row["key_id"]) if row else None


async def touch_keys(db: Any, key_ids: list[str]) -> None:
    """Record that these keys were used (batched: a minute's precision is what an admin needs)."""
    await db.execute("UPDATE gateway_keys SET last_used_at = now() WHERE key_id = ANY($1)", key_ids)


def configure_hashing(concurrency: int) -> None:
    """Bound how many password hashes run at once (PASSWORD_HASH_CONCURRENCY)."""
    global HASHING
    HASHING = asyncio.Semaphore(max(1, concurrency))
