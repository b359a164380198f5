"""Projects play events into the `plays` read model, newest revision wins.

A batch is reduced to the highest revision per play, staged with COPY, and merged with one
INSERT .. ON CONFLICT whose guard (`plays.revision < EXCLUDED.revision`) makes redelivery,
replays and out-of-order corrections harmless. A delete is a tombstone row with its revision,
so an older revision arriving later cannot bring the play back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from shared.db import Pools, SeasonPartitions
from shared.deps import Dependency
from shared.events import PlayDeleted, PlayEvent, events_of, latest_revisions, play_key
from shared.stats import PASSER_SACKED_IDS, PRESSURE_IDS, SACK_IDS

COLUMNS = (
    "play_id", "season", "game_id", "feed_play_id", "revision", "deleted", "season_type", "week",
    "home", "away", "sequence", "drive", "quarter", "clock", "down", "yards_to_go", "yardline_100",
    "offense", "defense", "play_type", "yards_gained", "touchdown", "turnover", "penalty", "sack",
    "pressure", "description", "formation", "personnel", "participants", "stats", "player_ids",
    "event_id", "occurred_at",
)  # fmt: skip
_KEYS = ("play_id", "season")
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in _KEYS)
MERGE_SQL = (
    f"INSERT INTO plays ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM plays_stage "
    f"ON CONFLICT (play_id, season) DO UPDATE SET {_UPDATE}, projected_at = now() "
    "WHERE plays.revision < EXCLUDED.revision"
)
GAMES_SQL = (
    "INSERT INTO games (game_id, season, season_type, week, home, away) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[]) "
    "ON CONFLICT (game_id) DO UPDATE SET season = EXCLUDED.season, season_type = EXCLUDED.season_type, "
    "week = EXCLUDED.week, home = EXCLUDED.home, away = EXCLUDED.away, updated_at = now()"
)
_json = msgspec.json.Encoder()


def row(event: PlayEvent) -> tuple[Any, ...]:
    """The `plays` row of an event, in COLUMNS order."""
    g = event.game
    head = (play_key(event), g.season, g.game_id)
    if isinstance(event, PlayDeleted):
        return (*head, event.play_id, event.revision, True, g.season_type, g.week, g.home, g.away,
                0, None, None, None, None, None, None, None, None, None, None, False, False, False,
                False, False, None, None, None, "[]", "[]", [], event.event_id, event.occurred_at)  # fmt: skip
    p = event.play
    stat_ids = {s.stat_id for s in p.stats}
    player_ids = sorted(
        {pp.player_id for pp in p.participants} | {s.player_id for s in p.stats if s.player_id}
    )
    return (
        *head, p.play_id, event.revision, False, g.season_type, g.week, g.home, g.away,
        p.sequence, p.drive, p.quarter, p.clock, p.down, p.yards_to_go, p.yardline_100,
        p.offense, p.defense, p.play_type, p.yards_gained, p.touchdown, p.turnover, p.penalty,
        bool(stat_ids & (SACK_IDS | PASSER_SACKED_IDS)), bool(stat_ids & PRESSURE_IDS), p.description,
        None if p.formation is None else _json.encode(p.formation).decode(),
        None if p.personnel is None else _json.encode(p.personnel).decode(),
        _json.encode(p.participants).decode(), _json.encode(p.stats).decode(), player_ids,
        event.event_id, event.occurred_at,
    )  # fmt: skip


class Projector:
    """Applies batches of Kafka records to PostgreSQL in one transaction each."""

    def __init__(self, db: Dependency[Pools]) -> None:
        self._db = db
        self._partitions = SeasonPartitions("plays")
        self.plays_written = 0

    def __repr__(self) -> str:
        return f"Projector(plays_written={self.plays_written}, {self._partitions!r})"

    async def apply_records(self, values: Sequence[bytes]) -> int:
        """Decode and apply raw event records; a record that does not decode raises."""
        return await self.apply(events_of(values))

    async def apply(self, events: Sequence[PlayEvent]) -> int:
        """Apply events; returns how many plays rows changed."""
        events = latest_revisions(events)
        if not events:
            return 0
        games = {e.game.game_id: e.game for e in events}
        async with self._db.get().primary.acquire() as conn:
            await self._partitions.ensure(conn, {g.season for g in games.values()})
            async with conn.transaction():
                changed = await self._write(conn, events)
                game_rows = [
                    (g.game_id, g.season, g.season_type, g.week, g.home, g.away) for g in games.values()
                ]
                await conn.execute(GAMES_SQL, *(list(col) for col in zip(*game_rows, strict=True)))
        self.plays_written += changed
        return changed

    async def _write(self, conn: asyncpg.Connection, events: list[PlayEvent]) -> int:
        """COPY the batch straight into `plays`; if any play is already there, merge instead.

        Almost every batch holds only new plays, and a direct COPY writes them once. A
        correction, a delete or a redelivery hits the primary key, and the savepoint lets the
        batch go through the revision-guarded merge.
        """
        rows = [row(e) for e in events]
        try:
            async with conn.transaction():  # a savepoint inside the batch's transaction
                await conn.copy_records_to_table("plays", records=rows, columns=COLUMNS)
            return len(rows)
        except asyncpg.UniqueViolationError:
            pass
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS plays_stage (LIKE plays INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table("plays_stage", records=rows, columns=COLUMNS)
        return int((await conn.execute(MERGE_SQL)).rsplit(" ", 1)[-1])
