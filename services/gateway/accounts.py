"""Users, API keys and roles: hashing, storage and lookup (no transport code)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

ROLES = ("admin", "feed", "analyst", "viewer")
ALLOWED_ROLES = "admin, feed, analyst or viewer"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# scrypt cost: ~50 ms and 16 MiB per check, run off the event loop.
_N, _R, _P = 2**14, 8, 1
KEY_PREFIX = "snp_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user or an API key, and its role."""

    kind: Literal["user", "key"]
    name: str
    role: str
    token_id: str | None = None  # the access token's jti, so logout can revoke it
    expires_at: int | None = None

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.name}"


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


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (constant time in the digest comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# A hash to check against when the user does not exist, so timing does not reveal usernames.
_DECOY = hash_password(secrets.token_urlsafe(16))


async def upsert_user(db: Any, username: str, password: str, role: str) -> bool:
    """Create the user or update its password and role; True when it was created."""
    check_name(username)
    check_role(role)
    if not password:
        raise ValueError("the password must not be empty")
    hashed = await asyncio.to_thread(hash_password, password)
    created: bool = await db.fetchval(
        "INSERT INTO gateway_users (username, password_hash, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (username) DO UPDATE"
        " SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, updated_at = now()"
        " RETURNING (xmax = 0)",
        username,
        hashed,
        role,
    )
    return created


async def authenticate_user(db: Any, username: str, password: str) -> Principal | None:
    """The user when the password matches, else None."""
    row = await db.fetchrow("SELECT password_hash, role FROM gateway_users WHERE username = $1", username)
    stored = row["password_hash"] if row else _DECOY
    ok = await asyncio.to_thread(verify_password, password, stored)
    return Principal("user", username, row["role"]) if ok and row else None


async def user_role(db: Any, username: str) -> str | None:
    """The user's current role, or None when it no longer exists."""
    role: str | None = await db.fetchval("SELECT role FROM gateway_users WHERE username = $1", username)
    return role


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def add_api_key(db: Any, name: str, role: str) -> str:
    """A new API key for `name` (replacing any earlier key of that name); shown only now."""
    check_name(name)
    check_role(role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO gateway_api_keys (name, key_sha256, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE"
        " SET key_sha256 = EXCLUDED.key_sha256, role = EXCLUDED.role, created_at = now()",
        name,
        key_digest(key),
        role,
    )
    return key


async def find_api_key(db: Any, digest: str) -> Principal | None:
    """The key's principal by the key's SHA-256, or None when no key has it."""
    row = await db.fetchrow("SELECT name, role FROM gateway_api_keys WHERE key_sha256 = $1", digest)
    return Principal("key", row["name"], row["role"]) if row else None
