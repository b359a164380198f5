"""A short-lived in-memory cache of API key lookups, so a hot key does not query PostgreSQL per request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from services.gateway.accounts import Principal

API_KEY_LOOKUPS = Counter(
    "snapline_gateway_api_key_cache_total", "API key lookups by cache outcome", ["outcome"]
)


class KeyCache:
    """Maps a key's SHA-256 to its principal (or None, for unknown keys) for `ttl` seconds.

    A replaced key keeps working on this instance for at most `ttl` seconds.
    """

    def __init__(self, ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def __repr__(self) -> str:
        return f"KeyCache(entries={len(self._entries)}, ttl={self.ttl})"

    async def get(self, digest: str, load: Callable[[str], Awaitable[Principal | None]]) -> Principal | None:
        """The cached principal for `digest`, loading it with `load` on a miss."""
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            API_KEY_LOOKUPS.labels("hit").inc()
            return hit[1]
        API_KEY_LOOKUPS.labels("miss").inc()
        principal = await load(digest)
        if len(self._entries) >= self.max_entries:
            # Unknown keys could otherwise grow the cache without bound.
            self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (now + self.ttl, principal)
        return principal
