"""Applies play events to the aggregates in PostgreSQL, one transaction per batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import msgspec

from services.analytics.aggregates import Contribution, Key, contribution, defender_rows, delta
from shared.db import Pools, SeasonPartitions
from shared.deps import Dependency
from shared.events import PlayDeleted, PlayEvent, events_of, latest_revisions, play_key

_contrib_codec = msgspec.json.Decoder(list[tuple[str, str, int, str, int, str, float]])
_json = msgspec.json.Encoder()
LOCK_SQL = (
    "SELECT play_id, revision, contrib FROM analytics_play_contrib "
    "WHERE play_id = ANY($1::text[]) ORDER BY play_id FOR UPDATE"
)
TOTALS_SQL = (
    "INSERT INTO stat_totals AS t (subject_kind, subject_id, season, season_type, week, stat, value) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[], $7::float8[]) "
    "ON CONFLICT (subject_kind, subject_id, season, season_type, week, stat) "
    "DO UPDATE SET value = t.value + EXCLUDED.value"
)
CONTRIB_SQL = (
    "INSERT INTO analytics_play_contrib (play_id, season, revision, contrib) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::jsonb[]) "
    "ON CONFLICT (play_id) DO UPDATE SET revision = EXCLUDED.revision, contrib = EXCLUDED.contrib"
)
PLAYERS_SQL = (
    "INSERT INTO players AS p (player_id, name, team, position) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
    "ON CONFLICT (player_id) DO UPDATE SET name = coalesce(EXCLUDED.name, p.name), "
    "team = coalesce(EXCLUDED.team, p.team), position = coalesce(EXCLUDED.position, p.position), "
    "updated_at = now()"
)
CONTRIB_COLUMNS = ("play_id", "season", "revision", "contrib")
DEFENDER_COLUMNS = ("season", "play_id", "player_id", "team", "season_type", "week", "quarter", "down",
                    "yards_to_go", "yardline_100", "offense", "pressure", "sacks")  # fmt: skip


def _encode(c: Contribution) -> str:
    return _json.encode([[*k, v] for k, v in c.items()]).decode()


def _decode(raw: str) -> Contribution:
    return {tuple(item[:6]): item[6] for item in _contrib_codec.decode(raw)}  # type: ignore[misc]


def _total_columns(totals: dict[Key, float]) -> list[list[Any]]:
    """The seven unnest arrays of TOTALS_SQL, rows in key order so instances never deadlock."""
    columns: list[list[Any]] = [[], [], [], [], [], [], []]
    kinds, subjects, seasons, types, weeks, stats, values = columns
    for key in sorted(totals):
        value = totals[key]
        if value:
            kind, subject, season, season_type, week, stat = key
            kinds.append(kind)
            subjects.append(subject)
            seasons.append(season)
            types.append(season_type)
            weeks.append(week)
            stats.append(stat)
            values.append(value)
    return columns


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else []


class AggregateStore:
    """Keeps exact totals: each play's last contribution is stored and replaced by difference."""

    def __init__(self, db: Dependency[Pools], on_change: Callable[[], Awaitable[None]]) -> None:
        self._db = db
        self._on_change = on_change
        self._partitions = SeasonPartitions("defender_plays")
        # Players as last written by this process; remembered only once their transaction commits.
        self._players: dict[str, tuple[str, str | None, str, str | None]] = {}
        self._pending_players: dict[str, tuple[str, str | None, str, str | None]] = {}
        self.applied = 0

    def __repr__(self) -> str:
        return f"AggregateStore(applied={self.applied})"

    async def apply_records(self, values: Sequence[bytes]) -> int:
        return await self.apply(events_of(values))

    async def apply(self, events: Sequence[PlayEvent]) -> int:
        """Apply events; returns how many plays changed the aggregates."""
        events = latest_revisions(events)
        if not events:
            return 0
        async with self._db.get().primary.acquire() as conn:
            await self._partitions.ensure(conn, {e.game.season for e in events})
            self._pending_players = {}
            async with conn.transaction():
                applied = await self._apply(conn, events)
            self._players.update(self._pending_players)
            self._pending_players = {}
        if applied:
            self.applied += applied
            await self._on_change()
        return applied

    async def _apply(self, conn: asyncpg.Connection, events: list[PlayEvent]) -> int:
        keys = [play_key(e) for e in events]
        stored = {r["play_id"]: r for r in await conn.fetch(LOCK_SQL, keys)}
        totals: dict[Key, float] = defaultdict(float)
        changed: list[tuple[PlayEvent, str, Contribution]] = []
        replaced: list[str] = []  # plays counted before: their defender rows are replaced
        for event, key in zip(events, keys, strict=True):
            prev = stored.get(key)
            if prev is not None and prev["revision"] >= event.revision:
                continue  # redelivered or superseded: already counted
            new = contribution(event)
            if prev is None:
                for k, v in new.items():
                    totals[k] += v
            else:
                replaced.append(key)
                for k, v in delta(new, _decode(prev["contrib"])).items():
                    totals[k] += v
            changed.append((event, key, new))
        if not changed:
            return 0
        if totals:
            await conn.execute(TOTALS_SQL, *_total_columns(totals))
        rows = [(key, e.game.season, e.revision, _encode(new)) for e, key, new in changed]
        fresh = [r for r in rows if r[0] not in stored]  # most plays are new: COPY them, upsert the rest
        if fresh:
            await conn.copy_records_to_table("analytics_play_contrib", records=fresh, columns=CONTRIB_COLUMNS)
        if len(fresh) < len(rows):
            await conn.execute(CONTRIB_SQL, *_columns([r for r in rows if r[0] in stored]))
        await self._replace_defenders(conn, changed, replaced)
        await self._upsert_players(conn, [e for e, _, _ in changed])
        return len(changed)

    async def _replace_defenders(
        self,
        conn: asyncpg.Connection,
        changed: list[tuple[PlayEvent, str, Contribution]],
        replaced: list[str],
    ) -> None:
        if replaced:
            await conn.execute(
                "DELETE FROM defender_plays WHERE season = ANY($1::int[]) AND play_id = ANY($2::text[])",
                sorted({e.game.season for e, _, _ in changed}), replaced,
            )  # fmt: skip
        rows = [r for e, key, _ in changed for r in defender_rows(e, key)]
        if rows:
            await conn.copy_records_to_table("defender_plays", records=rows, columns=DEFENDER_COLUMNS)

    async def _upsert_players(self, conn: asyncpg.Connection, events: list[PlayEvent]) -> None:
        people: dict[str, tuple[str, str | None, str, str | None]] = {}
        for e in events:
            if isinstance(e, PlayDeleted):
                continue
            for pp in e.play.participants:
                person = (pp.player_id, pp.name, pp.team, pp.position)
                if self._players.get(pp.player_id) != person:  # known and unchanged: no write
                    people[pp.player_id] = person
        if people:
            await conn.execute(PLAYERS_SQL, *_columns([people[k] for k in sorted(people)]))
        self._pending_players = people
