"""Per-game sequencing in Redis: one Lua script numbers, stores and publishes each event once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from services.live.messages import split_message
from shared.deps import Dependency
from shared.events import play_key

# KEYS: revisions hash, seq counter, stream of one game. ARGV: channel, ttl, history length, then
# per event (play id, revision, head, tail). Returns each event's seq, 0 for one already sequenced.
# The message is spliced from the Python-built halves so cjson never re-encodes a number.
# One call per game and fetch: revisions are read with one HMGET and written with one HSET,
# the seqs taken with one INCRBY, and the expiry refreshed once; only the stream entry and
# the publish are per event. The stream keeps about the last `history length` messages (XADD's
# approximate MAXLEN: whole radix-tree nodes are dropped, so a few more may stay).
SEQUENCE_LUA = """
local n = (#ARGV - 3) / 4
local plays = {}
for i = 1, n do plays[i] = ARGV[4 * i] end
local seen = redis.call('HMGET', KEYS[1], unpack(plays))
local latest, fresh, out = {}, {}, {}
for i = 1, n do
  local rev = tonumber(ARGV[4 * i + 1])
  if (latest[plays[i]] or tonumber(seen[i] or '0')) >= rev then
    out[i] = 0
  else
    latest[plays[i]] = rev
    fresh[#fresh + 1] = i
  end
end
if #fresh > 0 then
  local seq = redis.call('INCRBY', KEYS[2], #fresh) - #fresh
  local writes = {}
  for _, i in ipairs(fresh) do
    seq = seq + 1
    local message = ARGV[4 * i + 2] .. seq .. ARGV[4 * i + 3]
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', message)
    redis.call('PUBLISH', ARGV[1], message)
    out[i] = seq
    writes[#writes + 1] = plays[i]
    writes[#writes + 1] = ARGV[4 * i + 1]
  end
  redis.call('HSET', KEYS[1], unpack(writes))
end
for k = 1, 3 do
  redis.call('EXPIRE', KEYS[k], ARGV[2])
end
return out
"""
SCRIPT_EVENTS = 1000  # events per script call: Lua's unpack() has a stack limit of about 8000
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

    def known(self, game_id: str) -> str:
        """Set for a game whose plays came as history only (imports): known, but not live."""
        return f"{self.game(game_id)}:known"

    def channel(self, game_id: str) -> str:
        return f"{self.prefix}:events:{game_id}"


class Sequencer:
    """Assigns each game's events a gap-free seq and keeps the numbered messages for replay."""

    def __init__(
        self, redis: Dependency[aioredis.Redis], prefix: str, ttl_seconds: int, history: int = 10_000
    ) -> None:
        self.keys = Keys(prefix)
        self._redis = redis
        self._ttl = ttl_seconds
        self.history_length = history
        self._lua: Any = None

    def __repr__(self) -> str:
        return f"Sequencer(prefix={self.keys.prefix!r})"

    def _script(self, client: aioredis.Redis) -> Any:
        # Registered once: redis-py runs it by SHA and loads it only when the server lacks it.
        if self._lua is None:
            self._lua = client.register_script(SEQUENCE_LUA)
        return self._lua

    async def sequence(self, events: Sequence[Any]) -> list[int]:
        """Sequence events (full or views) in order in one round trip; 0 marks one already sequenced."""
        client = self._redis.get()
        script = self._script(client)
        by_game: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_game.setdefault(event.game.game_id, []).append(index)
        pipe = client.pipeline(transaction=False)
        chunks: list[list[int]] = []
        for game_id, all_indexes in by_game.items():
            keys = [self.keys.revisions(game_id), self.keys.seq(game_id), self.keys.stream(game_id)]
            for start in range(0, len(all_indexes), SCRIPT_EVENTS):
                indexes = all_indexes[start : start + SCRIPT_EVENTS]
                args: list[Any] = [self.keys.channel(game_id), self._ttl, self.history_length]
                for i in indexes:
                    head, tail = split_message(events[i])
                    args += [play_key(events[i]), events[i].revision, head, tail]
                await script(keys=keys, args=args, client=pipe)
                chunks.append(indexes)
        seqs = [0] * len(events)
        for indexes, results in zip(chunks, await pipe.execute(), strict=True):
            for i, seq in zip(indexes, results, strict=True):
                seqs[i] = int(seq)
        return seqs

    async def mark_history(self, game_ids: Sequence[str]) -> None:
        """Remember games whose plays arrived as history, so a viewer of one is told to reload."""
        if not game_ids:
            return
        pipe = self._redis.get().pipeline(transaction=False)
        for game_id in game_ids:
            pipe.set(self.keys.known(game_id), "history", ex=self._ttl)
        await pipe.execute()

    async def state(self, game_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """Per game: its latest seq (0 before its first message) and whether live knows it at all."""
        if not game_ids:
            return {}
        keys = [self.keys.seq(g) for g in game_ids] + [self.keys.known(g) for g in game_ids]
        values = await self._redis.get().mget(keys)
        n = len(game_ids)
        return {
            g: (int(values[i] or 0), bool(values[i]) or values[n + i] is not None)
            for i, g in enumerate(game_ids)
        }

    async def oldest(self, game_id: str) -> int | None:
        """The seq of the oldest message the game's stream still holds (None: it holds none)."""
        entries: list[Any] = await self._redis.get().xrange(self.keys.stream(game_id), count=1) or []
        return int(entries[0][0].split(b"-")[0]) if entries else None

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
