"""Per-game sequencing in Redis: one Lua script numbers, stores and publishes each event once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from services.live.messages import split_message
from shared.deps import Dependency
from shared.events import PlayEvent, play_key

# KEYS: revisions hash, seq counter, stream. ARGV: play id, revision, head, tail, channel, ttl.
# The message is spliced from the Python-built halves so cjson never re-encodes a number.
SEQUENCE_LUA = """
local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if seen >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local seq = redis.call('INCR', KEYS[2])
local message = ARGV[3] .. seq .. ARGV[4]
redis.call('XADD', KEYS[3], seq .. '-0', 'm', message)
redis.call('PUBLISH', ARGV[5], message)
for i = 1, 3 do
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
return seq
"""
_GLOB_SPECIAL = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})
HISTORY_PAGE = 500


class Keys:
    """Redis key and channel names of the live service under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:live"

    def game(self, game_id: str) -> str:
        # The hash tag keeps one game's keys in one cluster slot, as the script needs.
        return f"{self.prefix}:{{{game_id}}}"

    def seq(self, game_id: str) -> str:
        return f"{self.game(game_id)}:seq"

    def revisions(self, game_id: str) -> str:
        return f"{self.game(game_id)}:revs"

    def stream(self, game_id: str) -> str:
        return f"{self.game(game_id)}:stream"

    def channel(self, game_id: str) -> str:
        return f"{self.prefix}:events:{game_id}"

    @property
    def channel_pattern(self) -> str:
        return f"{self.prefix.translate(_GLOB_SPECIAL)}:events:*"


class Sequencer:
    """Assigns each game's events a gap-free seq and keeps the numbered messages for replay."""

    def __init__(self, redis: Dependency[aioredis.Redis], prefix: str, ttl_seconds: int) -> None:
        self.keys = Keys(prefix)
        self._redis = redis
        self._ttl = ttl_seconds
        self._lua: Any = None

    def __repr__(self) -> str:
        return f"Sequencer(prefix={self.keys.prefix!r})"

    def _script(self, client: aioredis.Redis) -> Any:
        # Registered once: redis-py runs it by SHA and loads it only when the server lacks it.
        if self._lua is None:
            self._lua = client.register_script(SEQUENCE_LUA)
        return self._lua

    async def sequence(self, events: Sequence[PlayEvent]) -> list[int]:
        """Sequence events in order in one round trip; 0 marks an event already sequenced."""
        client = self._redis.get()
        script = self._script(client)
        pipe = client.pipeline(transaction=False)
        for event in events:
            game_id = event.game.game_id
            head, tail = split_message(event)
            keys = [self.keys.revisions(game_id), self.keys.seq(game_id), self.keys.stream(game_id)]
            args = [play_key(event), event.revision, head, tail, self.keys.channel(game_id), self._ttl]
            await script(keys=keys, args=args, client=pipe)
        return [int(seq) for seq in await pipe.execute()]

    async def current(self, game_ids: Sequence[str]) -> dict[str, int]:
        """The latest seq of each game (0 before its first message)."""
        if not game_ids:
            return {}
        values = await self._redis.get().mget([self.keys.seq(g) for g in game_ids])
        return {g: int(v or 0) for g, v in zip(game_ids, values, strict=True)}

    async def history(self, game_id: str, after_seq: int, up_to: int | None = None) -> list[tuple[int, str]]:
        """Stored messages of a game with after_seq < seq <= up_to (to the end when None)."""
        client = self._redis.get()
        stream = self.keys.stream(game_id)
        end = "+" if up_to is None else f"{up_to}-0"
        found: list[tuple[int, str]] = []
        start = f"{after_seq + 1}-0"
        while True:
            entries: list[Any] = await client.xrange(stream, min=start, max=end, count=HISTORY_PAGE) or []
            for entry_id, fields in entries:
                found.append((int(entry_id.split(b"-")[0]), fields[b"m"].decode()))
            if len(entries) < HISTORY_PAGE:
                return found
            start = f"({entries[-1][0].decode()}"
