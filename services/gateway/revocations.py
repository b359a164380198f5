"""Revocation across gateway instances: state in Redis that every request reads, plus a broadcast
that closes the live sockets of whoever lost access.

Requests need no broadcast: each one reads the user's token generation or the keys' generation in
its rate-limit round trip. Spliced WebSockets make no requests, so every instance listens on the
deployment's revocation channel and closes the affected sockets with 4003.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from prometheus_client import Counter

from services.gateway.accounts import Principal
from services.gateway.keys import REDIS, TOKENS
from services.gateway.ratelimit import REDIS_ERRORS
from shared.logging import get_logger

log = get_logger(__name__)
REVOCATIONS = Counter("snapline_gateway_revocations_total", "Revocations made or heard", ["kind", "origin"])
REVOKED_REASON = "access revoked; sign in again"
REVOKED_CODE = 4003
CLOSERS = web.AppKey("revocation_closers", list)


def channel(app: web.Application) -> str:
    return f"{app[TOKENS].prefix}revocations"


async def revoke_user(app: web.Application, username: str, generation: int) -> None:
    """After the user's generation was bumped in PostgreSQL: Redis, the families, the live sockets."""
    try:
        redis = app[REDIS].get()
        await app[TOKENS].revoke_user(redis, username, generation)
        await redis.publish(channel(app), json.dumps({"user": username}))
    except REDIS_ERRORS as exc:
        # PostgreSQL holds the new generation: requests fall back to it while Redis is away, but the
        # cached one must not outlive it, so this is worth a loud line.
        log.error("revocation_not_cached", user=username, error=f"{type(exc).__name__}: {exc}")
    REVOCATIONS.labels("user", "local").inc()


async def revoke_keys(app: web.Application, key_ids: list[str]) -> None:
    """After keys were revoked in PostgreSQL: every instance's key cache, and the keys' live sockets."""
    try:
        redis = app[REDIS].get()
        await redis.incr(f"{app[TOKENS].prefix}keys-gen")
        await redis.publish(channel(app), json.dumps({"keys": key_ids}))
    except REDIS_ERRORS as exc:
        # PostgreSQL has the revocation: while Redis is away every request checks it there, and
        # each instance forgets its key cache until Redis answers again (auth.still_valid).
        log.error("key_revocation_not_announced", keys=key_ids, error=f"{type(exc).__name__}: {exc}")
    REVOCATIONS.labels("key", "local").inc()


def _matcher(message: dict[str, object]) -> tuple[str, object] | None:
    if isinstance(message.get("user"), str):
        return "user", message["user"]
    keys = message.get("keys")
    if isinstance(keys, list):
        return "key", {str(k) for k in keys}
    return None


def affected(kind: str, what: object, principal: Principal) -> bool:
    if kind == "user":
        return principal.kind == "user" and principal.name == what
    return principal.kind == "key" and principal.key_id in what  # type: ignore[operator]


async def listen(app: web.Application) -> None:
    """Close the live sockets of revoked principals as revocations are announced (runs supervised)."""
    await app[REDIS].wait()
    pubsub = app[REDIS].get().pubsub()
    await pubsub.subscribe(channel(app))
    try:
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            if msg is None or msg.get("type") != "message":
                continue
            try:
                match = _matcher(json.loads(msg["data"]))
            except ValueError:
                continue
            if match is None:
                continue
            kind, what = match
            REVOCATIONS.labels(kind, "heard").inc()
            for close in app[CLOSERS]:
                closed = close(lambda p, k=kind, w=what: affected(k, w, p), REVOKED_CODE, REVOKED_REASON)
                if closed:
                    log.info("live_sockets_revoked", kind=kind, closed=closed)
    finally:
        await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call,unused-ignore]
