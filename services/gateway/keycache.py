"""An in-memory cache of API key lookups, so a hot key does not query PostgreSQL per request.

Revocation reaches every instance on its next request: each request reads the deployment's
key generation (bumped in Redis whenever a key is revoked or replaced) in the same round trip
as its rate limit, and a cache that sees a new generation forgets everything it holds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge

from services.gateway.accounts import Principal

API_KEY_LOOKUPS = Counter(
    "snapline_gateway_api_key_cache_total", "API key lookups by cache outcome", ["outcome"]
)
API_KEY_ENTRIES = Gauge("snapline_gateway_api_key_cache_entries", "API keys (and unknown keys) cached")


class KeyCache:
    """Maps a key's SHA-256 to its principal (or None, for unknown keys) for `ttl` seconds."""

    def __init__(self, ttl: float = 300.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.generation: bytes | None = None
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self.used: set[str] = set()  # key ids used since the last flush of last_used_at

    def __repr__(self) -> str:
        return f"KeyCache(entries={len(self._entries)}, ttl={self.ttl}, generation={self.generation!r})"

    def peek(self, digest: str) -> tuple[bool, Principal | None]:
        """(True, principal) on a fresh entry, (False, None) on a miss."""
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            API_KEY_LOOKUPS.labels("hit").inc()
            self._mark(hit[1])
            return True, hit[1]
        return False, None

    async def load(self, digest: str, load: Callable[[str], Awaitable[Principal | None]]) -> Principal | None:
        """Look the key up with `load` and remember the answer."""
        API_KEY_LOOKUPS.labels("miss").inc()
        principal = await load(digest)
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            # Unknown keys could otherwise grow the cache without bound.
            self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (now + self.ttl, principal)
        API_KEY_ENTRIES.set(len(self._entries))
        self._mark(principal)
        return principal

    def sync(self, generation: bytes | None) -> bool:
        """True when `generation` is the one the cache was filled under; else forget everything."""
        if generation == self.generation:
            return True
        self.generation = generation
        self._entries.clear()
        API_KEY_ENTRIES.set(0)
        API_KEY_LOOKUPS.labels("invalidated").inc()
        return False

    def _mark(self, principal: Principal | None) -> None:
        if principal is not None and principal.key_id is not None:
            self.used.add(principal.key_id)

    def take_used(self) -> list[str]:
        used, self.used = sorted(self.used), set()
        return used
