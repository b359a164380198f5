"""Per-game sequencing in Redis: one Lua script numbers, stores and publishes each event once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from services.live.batch import ReadBatcher
from services.live.messages import followups, split_message
from shared.deps import Dependency
from shared.events import play_key

# KEYS: revisions hash, seq counter, stream, state hash and known marker of one game. ARGV: channel,
# ttl, history length, league channel, ttl once final; then per event (play id, revision, head,
# tail, play sequence or "" for a delete, then signature, head and tail of its `score` and of its
# `game_state`). Returns each event's seq, 0 for one already sequenced.
# Messages are spliced from the Python-built halves so cjson never re-encodes a number. After a
# fresh play message, the game's latest play (by sequence; a late correction of an older play
# does not move the score back) sends `score` and `game_state` when their signatures differ from
# the game's last, each with the next seq, also on the league channel; the last of each is kept
# for league subscribers. Revisions are read with one HMGET and written with one HSET; the stream
# keeps about the last `history length` messages (XADD's approximate MAXLEN: whole radix-tree
# nodes are dropped, so a few more may stay). Once a game is final its keys expire after the
# shorter ttl, and the known marker (the long ttl) tells a late viewer to load it from the query API.
SEQUENCE_LUA = """
local S, P = 11, 5
local n = (#ARGV - P) / S
local plays = {}
for i = 1, n do plays[i] = ARGV[P + S * (i - 1) + 1] end
local seen = redis.call('HMGET', KEYS[1], unpack(plays))
local st = redis.call('HMGET', KEYS[4], 'hi', 'score', 'state', 'final')
local hi = tonumber(st[1] or '-1')
local score, state, final = st[2] or '', st[3] or '', st[4] or ''
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local latest, out, writes = {}, {}, {}
local moved = false
local function emit(head, tail, league)
  seq = seq + 1
  local message = head .. seq .. tail
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', message)
  redis.call('PUBLISH', ARGV[1], message)
  if league then redis.call('PUBLISH', ARGV[4], message) end
  return message
end
for i = 1, n do
  local b = P + S * (i - 1)
  local rev = tonumber(ARGV[b + 2])
  if (latest[plays[i]] or tonumber(seen[i] or '0')) >= rev then
    out[i] = 0
  else
    latest[plays[i]] = rev
    out[i] = seq + 1
    emit(ARGV[b + 3], ARGV[b + 4], false)
    writes[#writes + 1] = plays[i]
    writes[#writes + 1] = ARGV[b + 2]
    local order = tonumber(ARGV[b + 5])
    if order and order >= hi then
      hi = order
      moved = true
      if ARGV[b + 6] ~= '' and ARGV[b + 6] ~= score then
        score = ARGV[b + 6]
        redis.call('HSET', KEYS[4], 'score_msg', emit(ARGV[b + 7], ARGV[b + 8], true))
      end
      if ARGV[b + 9] ~= '' and ARGV[b + 9] ~= state then
        state = ARGV[b + 9]
        redis.call('HSET', KEYS[4], 'state_msg', emit(ARGV[b + 10], ARGV[b + 11], true))
        if string.sub(state, 1, 6) == 'final|' then final = '1' end
      end
    end
  end
end
if #writes > 0 then
  redis.call('SET', KEYS[2], seq)
  redis.call('HSET', KEYS[1], unpack(writes))
end
if moved then
  redis.call('HSET', KEYS[4], 'hi', hi, 'score', score, 'state', state, 'final', final)
end
local ttl = ARGV[2]
if final == '1' then
  ttl = ARGV[5]
  redis.call('SET', KEYS[5], 'final', 'EX', ARGV[2])
end
for k = 1, 4 do
  redis.call('EXPIRE', KEYS[k], ttl)
end
return out
"""
LEAGUE = "*"  # the pseudo game id of the league-wide channel
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

    def state(self, game_id: str) -> str:
        """The game's latest score and state: signatures and messages, for changes and league joins."""
        return f"{self.game(game_id)}:state"

    def channel(self, game_id: str) -> str:
        return f"{self.prefix}:events:{game_id}"

    @property
    def league(self) -> str:
        """The channel of every game's `score` and `game_state` (clients follow it as game "*")."""
        return self.channel(LEAGUE)

    @property
    def league_games(self) -> str:
        """Hash: game id -> when live last sequenced one of its events (epoch seconds)."""
        return f"{self.prefix}:league"


class Sequencer:
    """Assigns each game's events a gap-free seq and keeps the numbered messages for replay."""

    def __init__(
        self, redis: Dependency[aioredis.Redis], prefix: str, ttl_seconds: int, history: int = 10_000,
        final_ttl_seconds: int = 24 * 3600,
    ) -> None:  # fmt: skip
        self.keys = Keys(prefix)
        self._redis = redis
        self._ttl = ttl_seconds
        self._final_ttl = final_ttl_seconds
        self._read = ReadBatcher(redis)
        self.history_length = history
        self._lua: Any = None

    def __repr__(self) -> str:
        return f"Sequencer(prefix={self.keys.prefix!r})"

    def _script(self, client: aioredis.Redis) -> Any:
        # Registered once: redis-py runs it by SHA and loads it only when the server lacks it.
        if self._lua is None:
            self._lua = client.register_script(SEQUENCE_LUA)
        return self._lua

    async def sequence(
        self, events: Sequence[Any], extras: Sequence[dict[str, Any] | None] | None = None
    ) -> list[int]:
        """Sequence events (full or views) in order in one round trip; 0 marks one already sequenced.

        `extras`: fields each event's message adds (its EP/WP values), aligned with `events`.
        """
        client = self._redis.get()
        script = self._script(client)
        by_game: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_game.setdefault(event.game.game_id, []).append(index)
        pipe = client.pipeline(transaction=False)
        chunks: list[list[int]] = []
        for game_id, all_indexes in by_game.items():
            keys = [self.keys.revisions(game_id), self.keys.seq(game_id), self.keys.stream(game_id),
                    self.keys.state(game_id), self.keys.known(game_id)]  # fmt: skip
            for start in range(0, len(all_indexes), SCRIPT_EVENTS):
                indexes = all_indexes[start : start + SCRIPT_EVENTS]
                args: list[Any] = [self.keys.channel(game_id), self._ttl, self.history_length,
                                   self.keys.league, self._final_ttl]  # fmt: skip
                for i in indexes:
                    head, tail = split_message(events[i], extras[i] if extras else None)
                    args += [play_key(events[i]), events[i].revision, head, tail]
                    more = followups(events[i])
                    if more is None:
                        args += [b"", b"", b"", b"", b"", b"", b""]
                    else:
                        args += [more.order, more.score_sig, *more.score, more.state_sig, *more.state]
                await script(keys=keys, args=args, client=pipe)
                chunks.append(indexes)
        now = int(time.time())
        pipe.hset(self.keys.league_games, mapping={game_id: now for game_id in by_game})
        pipe.expire(self.keys.league_games, self._ttl)
        seqs = [0] * len(events)
        for indexes, results in zip(chunks, (await pipe.execute())[: len(chunks)], strict=True):
            for i, seq in zip(indexes, results, strict=True):
                seqs[i] = int(seq)
        return seqs

    async def league(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The games sequenced within the ttl, and their latest `score` and `game_state` messages
        (what a viewer joining the league channel is sent first)."""
        client = self._redis.get()
        seen: dict[Any, Any] = await client.hgetall(self.keys.league_games) or {}
        horizon = time.time() - self._ttl
        stale = [g for g, at in seen.items() if float(at) < horizon]
        games = sorted(g.decode() for g, at in seen.items() if float(at) >= horizon)
        pipe = client.pipeline(transaction=False)
        if stale:
            pipe.hdel(self.keys.league_games, *stale)
        for game_id in games:
            pipe.hmget(self.keys.state(game_id), "score_msg", "state_msg")
        replies = await pipe.execute()
        pairs = replies[1 if stale else 0 :]
        return games, [(g, m.decode()) for g, pair in zip(games, pairs, strict=True) for m in pair if m]

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
        values = await self._read("mget", keys)
        n = len(game_ids)
        return {
            g: (int(values[i] or 0), bool(values[i]) or values[n + i] is not None)
            for i, g in enumerate(game_ids)
        }

    async def oldest(self, game_id: str) -> int | None:
        """The seq of the oldest message the game's stream still holds (None: it holds none)."""
        entries: list[Any] = await self._read("xrange", self.keys.stream(game_id), count=1) or []
        return int(entries[0][0].split(b"-")[0]) if entries else None

    async def current(self, game_ids: Sequence[str]) -> dict[str, int]:
        """The latest seq of each game (0 before its first message)."""
        if not game_ids:
            return {}
        values = await self._read("mget", [self.keys.seq(g) for g in game_ids])
        return {g: int(v or 0) for g, v in zip(game_ids, values, strict=True)}

    async def history(self, game_id: str, after_seq: int, up_to: int | None = None) -> list[tuple[int, str]]:
        """Stored messages of a game with after_seq < seq <= up_to (to the end when None)."""
        stream = self.keys.stream(game_id)
        end = "+" if up_to is None else f"{up_to}-0"
        found: list[tuple[int, str]] = []
        start = f"{after_seq + 1}-0"
        while True:
            entries: list[Any] = (
                await self._read("xrange", stream, min=start, max=end, count=HISTORY_PAGE) or []
            )
            for entry_id, fields in entries:
                found.append((int(entry_id.split(b"-")[0]), fields[b"m"].decode()))
            if len(entries) < HISTORY_PAGE:
                return found
            start = f"({entries[-1][0].decode()}"
