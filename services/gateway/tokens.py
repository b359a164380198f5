"""Access tokens (EdDSA JWT), refresh-token families and revocation, kept in Redis.

A sign-in starts a family: its refresh token is `<family id>.<secret>`, and each refresh spends
the current secret for a new one. Presenting a secret the family has already spent (a stolen
copy, or the client's own after a thief used it) kills the family and the access tokens issued
from it. There is no grace window: a client that lost a refresh response signs in again.
Logout, a password or role change and disabling a user bump the user's token generation (stored
in PostgreSQL, cached in Redis) and delete the user's families: every access token carries the
generation it was issued under and is refused once it is stale, on every gateway instance.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import redis.asyncio as aioredis

from services.gateway.accounts import Principal
from services.gateway.keyset import KeySet
from shared import accesstoken
from shared.config import Settings

InvalidToken = accesstoken.InvalidToken
GEN_CACHE_TTL = 3600  # seconds Redis caches a user's token generation (PostgreSQL is the truth)

# KEYS: family hash, family's dead mark; ARGV: presented digest, next digest, family TTL, dead TTL.
# -> {1, user, gen} rotated; {-1, user} reuse detected (family killed); {0} unknown.
_SPEND = """
local cur = redis.call('HGET', KEYS[1], 'cur')
if not cur then return {0} end
local user = redis.call('HGET', KEYS[1], 'user')
if cur ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  return {-1, user}
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, user, redis.call('HGET', KEYS[1], 'gen')}
"""


def _digest(secret: str) -> str:
    # Stored by digest: reading Redis does not hand out working refresh tokens.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Spent:
    """A refresh: outcome 1 rotated (`secret` is the family's next), -1 reuse (family killed), 0 unknown."""

    outcome: int
    user: str | None
    generation: int
    family: str
    secret: str


class Tokens:
    """Issues and checks the tokens of one deployment (its Redis prefix) with its key set."""

    def __init__(self, settings: Settings, keys: KeySet, prefix: str) -> None:
        self.settings = settings
        self.keys = keys
        self.prefix = prefix
        self._spend: Any = None

    def __repr__(self) -> str:
        return f"Tokens(prefix={self.prefix!r}, signing={self.keys.signing.kid!r})"

    # Redis key names
    def family_key(self, family: str) -> str:
        return f"{self.prefix}fam:{family}"

    def dead_key(self, family: str) -> str:
        return f"{self.prefix}fam-dead:{family}"

    def families_key(self, username: str) -> str:
        return f"{self.prefix}user-fams:{username}"

    def generation_key(self, username: str) -> str:
        return f"{self.prefix}gen:{username}"

    @property
    def _dead_ttl(self) -> int:
        return self.settings.access_token_ttl + accesstoken.LEEWAY

    def access_token(self, username: str, role: str, family: str, generation: int) -> str:
        now = int(time.time())
        s = self.settings
        claims = {
            "iss": s.jwt_issuer, "aud": s.jwt_audience, "sub": username, "role": role,
            "iat": now, "nbf": now, "exp": now + s.access_token_ttl, "jti": uuid.uuid4().hex,
            "fam": family, "gen": generation,
        }  # fmt: skip
        key = self.keys.signing
        headers = {"kid": key.kid, "typ": accesstoken.TOKEN_TYPE}
        return jwt.encode(claims, key.private, algorithm=accesstoken.ALGORITHM, headers=headers)

    def _pair(self, username: str, role: str, family: str, secret: str, generation: int) -> dict[str, Any]:
        return {
            "access_token": self.access_token(username, role, family, generation),
            "refresh_token": f"{family}.{secret}",
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
        }

    async def sign_in(
        self, redis: aioredis.Redis, username: str, role: str, generation: int
    ) -> dict[str, Any]:
        """A new family for the user: its first access and refresh tokens."""
        family, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        ttl = self.settings.refresh_token_ttl
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.family_key(family), mapping={"user": username, "cur": _digest(secret), "gen": generation}
            )
            pipe.expire(self.family_key(family), ttl)
            pipe.sadd(self.families_key(username), family)
            pipe.expire(self.families_key(username), ttl)
            pipe.set(self.generation_key(username), generation, ex=GEN_CACHE_TTL)
            await pipe.execute()
        return self._pair(username, role, family, secret, generation)

    async def spend(self, redis: aioredis.Redis, token: str) -> Spent:
        """Spend a refresh token for the next secret of its family (see Spent for the outcomes)."""
        family, dot, secret = token.partition(".")
        if not dot or not family or not secret or len(token) > 200:
            return Spent(0, None, 0, family, "")
        if self._spend is None:
            self._spend = redis.register_script(_SPEND)
        # The next secret is decided before the script runs so it is stored atomically.
        nxt = secrets.token_urlsafe(32)
        keys = [self.family_key(family), self.dead_key(family)]
        args = [_digest(secret), _digest(nxt), self.settings.refresh_token_ttl, self._dead_ttl]
        result = await self._spend(keys=keys, args=args, client=redis)
        outcome = int(result[0])
        if outcome == 0:
            return Spent(0, None, 0, family, "")
        user = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        return Spent(outcome, user, int(result[2]) if outcome == 1 else 0, family, nxt)

    def rotated_pair(self, spent: Spent, role: str) -> dict[str, Any]:
        """The pair to answer a successful `spend` with (its new secret is already stored)."""
        assert spent.user is not None
        return self._pair(spent.user, role, spent.family, spent.secret, spent.generation)

    async def kill_family(self, redis: aioredis.Redis, family: str) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.family_key(family))
            pipe.set(self.dead_key(family), b"1", ex=self._dead_ttl)
            await pipe.execute()

    async def revoke_user(self, redis: aioredis.Redis, username: str, generation: int) -> None:
        """Every family of the user goes, and access tokens older than `generation` stop working."""
        families = await redis.smembers(self.families_key(username))
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(self.generation_key(username), generation, ex=GEN_CACHE_TTL)
            for family in families:
                fam = family.decode() if isinstance(family, bytes) else str(family)
                pipe.delete(self.family_key(fam))
            pipe.delete(self.families_key(username))
            await pipe.execute()

    def decode(self, token: str) -> Principal:
        """The principal an access token names (signature, type, issuer, audience and times checked)."""
        claims = accesstoken.verify(
            token, self.keys.public, self.settings.jwt_issuer, self.settings.jwt_audience
        )
        fam, gen = claims.get("fam"), claims.get("gen")
        if not isinstance(fam, str) or not isinstance(gen, int):
            raise InvalidToken("the access token lacks its family or generation")
        return Principal(
            "user", claims["sub"], claims["role"], token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]), family=fam, generation=gen,
        )  # fmt: skip
