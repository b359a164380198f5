"""Applies play events to the aggregates in PostgreSQL, one transaction per batch (or two).

A large batch (a consumer catching up) is split by game into two halves applied concurrently,
each in its own transaction: while PostgreSQL writes one half, this process scores the other.
The halves touch disjoint rows (a play, and a team's or player's week, belong to one game),
every write is in key order, and a half that fails is retried with the batch, where the
stored contributions make the half already committed count nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence, Set
from typing import Any

import asyncpg
import msgspec

from services.analytics.aggregates import (
    PLAY_COLUMNS,
    Contribution,
    Entries,
    Week,
    delta,
    play_row,
    score,
    with_week,
)
from services.analytics.index import week_tag
from services.analytics.view import DeletedView, EventView, views_of
from shared.answers import bump
from shared.db import Pools, SeasonPartitions, share_swap_lock, swap_lock
from shared.deps import Dependency
from shared.epwp import ModelFile
from shared.events import PlayEvent, encoder, latest_by_play
from shared.logging import get_logger
from shared.valuing import Valuer

log = get_logger(__name__)

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
GAMES_SQL = (
    "INSERT INTO analytics_games (game_id, season, home, away) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[]) "
    "ON CONFLICT (game_id) DO UPDATE SET season = EXCLUDED.season, home = EXCLUDED.home, away = EXCLUDED.away "
    "WHERE (analytics_games.season, analytics_games.home, analytics_games.away) "
    "IS DISTINCT FROM (EXCLUDED.season, EXCLUDED.home, EXCLUDED.away)"
)
CONTRIB_COLUMNS = ("play_id", "season", "revision", "contrib")
DEFENDER_COLUMNS = ("season", "play_id", "player_id", "team", "season_type", "week", "quarter", "down",
                    "yards_to_go", "yardline_100", "offense", "pressure", "sacks")  # fmt: skip


def _encode(entries: Entries, week: Week) -> str:
    """A play's stored contribution: a JSON list of [kind, subject, season, season type, week, stat,
    amount], the format every version of this service reads."""
    season, season_type, wk = week
    return _json.encode(
        [[kind, subject, season, season_type, wk, stat, v] for (kind, subject, stat), v in entries.items()]
    ).decode()


def _decode(raw: str) -> Contribution:
    return {tuple(item[:6]): item[6] for item in _contrib_codec.decode(raw)}  # type: ignore[misc]


def _add(totals: dict[Week, Entries], week: Week, entries: Entries) -> None:
    """totals[week] += entries."""
    current = totals.get(week)
    if current is None:
        totals[week] = dict(entries)
        return
    get = current.get
    for entry, value in entries.items():
        current[entry] = get(entry, 0.0) + value


def _add_delta(totals: dict[Week, Entries], changes: Contribution) -> None:
    for (kind, subject, season, season_type, week, stat), value in changes.items():
        current = totals.setdefault((season, season_type, week), {})
        entry = (kind, subject, stat)
        current[entry] = current.get(entry, 0.0) + value


def _total_columns(totals: dict[Week, Entries]) -> list[list[Any]]:
    """The seven unnest arrays of TOTALS_SQL, rows in key order so instances never deadlock.

    The first six fields are unique per row, so the amount never decides the order.
    """
    rows = sorted(
        (kind, subject, season, season_type, week, stat, value)
        for (season, season_type, week), entries in totals.items()
        for (kind, subject, stat), value in entries.items()
        if value
    )
    return [list(col) for col in zip(*rows, strict=True)] if rows else []


SPLIT_PLAYS = 2000
GENERATIONS = "analytics_generations"  # the answer cache's generations (shared/answers.py)
# Seasons in cold storage (services/analytics/archive.py; written by shared/archive.py): reads answer 410.
ARCHIVED = "analytics_archived_seasons"
# `snapline rebuild analytics` swaps the four tables under it; every write transaction holds it shared.
SWAP_LOCK = swap_lock("services.analytics")
# EP/WP of analytics_plays, a whole game at a time (shared/valuing.py).
VALUER = Valuer("analytics_plays", "analytics_games")


async def after_chunk(conn: asyncpg.Connection, ids: list[str]) -> None:
    """A background valuing chunk changes the EPA answers of its games' seasons."""
    seasons = await conn.fetch(
        "SELECT DISTINCT season FROM analytics_games WHERE game_id = ANY($1::text[])", ids
    )
    await bump(conn, GENERATIONS, ["all", *(f"season:{r['season']}" for r in seasons)])


def _halves(plays: dict[str, EventView]) -> list[dict[str, EventView]]:
    """The plays in two halves of about the same size, every game wholly in one of them."""
    games: dict[str, dict[str, EventView]] = {}
    for key, event in plays.items():
        games.setdefault(event.game.game_id, {})[key] = event
    halves: list[dict[str, EventView]] = [{}, {}]
    for game in sorted(games.values(), key=len, reverse=True):
        min(halves, key=len).update(game)
    return halves


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else []


class AggregateStore:
    """Keeps exact totals: each play's last contribution is stored and replaced by difference."""

    def __init__(
        self, db: Dependency[Pools], swap_lock: int | None = SWAP_LOCK, models: ModelFile | None = None
    ) -> None:
        self._db = db
        self._swap_lock = swap_lock  # None: a rebuild's own store, writing its shadow tables
        # None: plays are stored without EP/WP (a rebuild's shadow: the service values it once swapped in)
        self._models = models
        self._partitions = [
            SeasonPartitions(t, swap_lock, archived=ARCHIVED) for t in ("defender_plays", "analytics_plays")
        ]
        # Players as last written by this process; remembered only once their transaction commits.
        self._players: dict[str, tuple[str, str | None, str, str | None]] = {}
        self.split_at = SPLIT_PLAYS  # batches of at least this many plays are applied in two halves
        self.applied = 0

    def __repr__(self) -> str:
        return f"AggregateStore(applied={self.applied})"

    async def apply_records(self, values: Sequence[bytes], defer_values: Set[str] = frozenset()) -> int:
        """Apply the events of Kafka record values; returns how many plays changed the aggregates.

        The games written are valued (EP/WP) in the same transaction, but for `defer_values`
        (history: bulk imports), which are left to the background pass (shared/valuing.py).
        """
        return await self._apply_latest(latest_by_play(views_of(values)), defer_values)

    async def apply(self, events: Sequence[PlayEvent]) -> int:
        """Apply events (as the records that would carry them); returns how many plays changed."""
        return await self.apply_records([encoder.encode(e) for e in events])

    async def _apply_latest(self, plays: dict[str, EventView], defer_values: Set[str] = frozenset()) -> int:
        if not plays:
            return 0
        pool = self._db.get().primary
        async with pool.acquire() as conn:
            for partitions in self._partitions:
                await partitions.ensure(conn, {e.game.season for e in plays.values()})
        parts = _halves(plays) if len(plays) >= self.split_at else [plays]
        async with asyncio.TaskGroup() as tasks:  # one half failing cancels the other
            applying = [
                tasks.create_task(self._apply_part(pool, part, defer_values)) for part in parts if part
            ]
        applied = sum(t.result() for t in applying)
        self.applied += applied
        return applied

    async def _apply_part(
        self, pool: asyncpg.Pool, plays: dict[str, EventView], defer_values: Set[str]
    ) -> int:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await share_swap_lock(conn, self._swap_lock)
                applied, people, weeks = await self._apply(conn, plays, defer_values)
                if (
                    applied
                ):  # what changed, for the answer cache and the index: last, its rows locked until commit
                    await bump(conn, GENERATIONS, [
                        "all", *(f"season:{season}" for season, _, _ in weeks), *(week_tag(*w) for w in weeks)
                    ])  # fmt: skip
            self._players.update(people)
        return applied

    async def _apply(
        self, conn: asyncpg.Connection, plays: dict[str, EventView], defer_values: Set[str] = frozenset()
    ) -> tuple[int, dict[str, tuple[str, str | None, str, str | None]], set[Week]]:
        """Apply the latest revision of each play (play key -> event) inside the caller's transaction;
        the plays applied, the players to remember, and the weeks whose rows changed (a correction
        that moves a play to another week changes both)."""
        stored = {r["play_id"]: r for r in await conn.fetch(LOCK_SQL, list(plays))}
        totals: dict[Week, Entries] = {}
        changed: list[EventView] = []
        fresh: list[tuple[str, int, int, str]] = []  # contribution rows of plays not counted before
        again: list[tuple[str, int, int, str]] = []  # and of plays counted before: upserted
        replaced: list[str] = []  # plays counted before: their defender rows are replaced
        weeks: set[Week] = set()
        defenders: list[tuple[Any, ...]] = []
        play_rows: list[tuple[Any, ...]] = []
        for key, event in plays.items():
            prev = stored.get(key) if stored else None
            if prev is not None and prev["revision"] >= event.revision:
                continue  # redelivered or superseded: already counted
            g = event.game
            week = (g.season, g.season_type, g.week)
            weeks.add(week)
            entries, rows = score(event, key)
            row = (key, g.season, event.revision, _encode(entries, week))
            if prev is None:
                if entries:
                    _add(totals, week, entries)
                fresh.append(row)
            else:
                old = _decode(prev["contrib"])
                weeks.update((season, season_type, wk) for _, _, season, season_type, wk, _ in old)
                _add_delta(totals, delta(with_week(entries, week), old))
                again.append(row)
                replaced.append(key)
            if rows:
                defenders += rows
            if (situation := play_row(event, key)) is not None:
                play_rows.append(situation)
            changed.append(event)
        if not changed:
            return 0, {}, set()
        if totals:
            columns = _total_columns(totals)
            if columns:
                await conn.execute(TOTALS_SQL, *columns)
        if fresh:  # most plays are new: COPY them, upsert the rest
            await conn.copy_records_to_table("analytics_play_contrib", records=fresh, columns=CONTRIB_COLUMNS)
        if again:
            await conn.execute(CONTRIB_SQL, *_columns(again))
        if replaced:
            seasons = sorted({e.game.season for e in changed})
            for table in ("defender_plays", "analytics_plays"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE season = ANY($1::int[]) AND play_id = ANY($2::text[])",
                    seasons, replaced,
                )  # fmt: skip
        if defenders:
            await conn.copy_records_to_table("defender_plays", records=defenders, columns=DEFENDER_COLUMNS)
        if play_rows:
            await conn.copy_records_to_table("analytics_plays", records=play_rows, columns=PLAY_COLUMNS)
        await self._value_games(conn, changed, defer_values)
        return len(changed), await self._upsert_players(conn, changed), weeks

    async def _value_games(self, conn: asyncpg.Connection, changed: list[EventView], defer: Set[str]) -> None:
        """The changed games' rows, then their values (or the mark that leaves them to the background)."""
        games = {e.game.game_id: e.game for e in changed}
        rows = sorted((g.game_id, g.season, g.home, g.away) for g in games.values())
        await conn.execute(GAMES_SQL, *_columns(rows))
        if self._models is not None:
            await VALUER.revalue(conn, self._models, [g for g in games if g not in defer], "batch")
            await VALUER.defer(conn, [g for g in games if g in defer])

    async def _upsert_players(
        self, conn: asyncpg.Connection, events: list[EventView]
    ) -> dict[str, tuple[str, str | None, str, str | None]]:
        """Write the players not known unchanged; returns them, to remember once committed."""
        people: dict[str, tuple[str, str | None, str, str | None]] = {}
        known = self._players.get
        for e in events:
            if type(e) is DeletedView:
                continue
            for pp in e.play.participants:  # type: ignore[union-attr]
                pid = pp.player_id
                person = (pid, pp.name, pp.team, pp.position)
                if known(pid) != person:  # known and unchanged: no write
                    people[pid] = person
        if people:
            await conn.execute(PLAYERS_SQL, *_columns([people[k] for k in sorted(people)]))
        return people


async def check_play_copy(db: Dependency[Pools]) -> None:
    """Say so once at start when the aggregates hold plays that `analytics_plays` does not (a
    database made before that table existed): EPA and tendencies then miss them until
    `snapline rebuild analytics` replays the topic."""
    await db.wait()
    pool = db.get().primary
    counted = await pool.fetchval("SELECT EXISTS (SELECT 1 FROM analytics_play_contrib)")
    copied = await pool.fetchval("SELECT EXISTS (SELECT 1 FROM analytics_plays)")
    if counted and not copied:
        log.warning(
            "analytics_plays_empty",
            message="the aggregates hold plays that analytics_plays does not: EPA and tendencies miss them "
            "until `snapline rebuild analytics`",
        )
