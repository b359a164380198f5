"""Expected points and win probability stored with each play of a service's own tables.

shared/epwp.py computes a game's values; this module keeps a service's stored copy of them true.
Query (`plays`, `games`) and analytics (`analytics_plays`, `analytics_games`) each own a pair of
tables of the same shape, and each uses a `Valuer` over its own pair:

- the plays table has `game_id`, `season`, `play_id`, `home`, the situation fields of
  shared.epwp.SITUATION_FIELDS, the five value columns and `value_model`;
- the games table has `game_id` and `value_model`, the model that last valued the whole game.

A play's values depend on its neighbours (the score before it, the next snap's situation), so a
game is valued whole: after every batch a consumer revalues the games it wrote, in the same
transaction (a correction or a delete moves its neighbours' values too), and writes only the rows
whose values changed. A background pass values the games a model has not valued yet: every game
when a new model is fitted, what was projected while there was none, and history (bulk imports),
which consumers mark unvalued instead of keeping an import waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from shared.db import Pools, share_swap_lock
from shared.deps import Dependency
from shared.epwp import ModelFile, Stored, Values
from shared.logging import get_logger

log = get_logger(__name__)

VALUE_COLUMNS = ("ep_before", "ep_after", "epa", "wp_before", "wp_after")
# What a chunk of the background pass does after valuing its games (the answer caches' bumps).
AfterChunk = Callable[[asyncpg.Connection, list[str]], Awaitable[None]]

_PLAYS = Counter("snapline_valued_plays_total", "Plays whose EP/WP values were written, by table", ["table"])
_GAMES = Counter("snapline_valued_games_total", "Games revalued, by table and why", ["table", "reason"])
_UNVALUED = Gauge(
    "snapline_unvalued_games",
    "Games the current EP/WP model has not valued yet (last pass), by table",
    ["table"],
)


def _groups(rows: Sequence[asyncpg.Record]) -> Iterable[list[asyncpg.Record]]:
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["game_id"] != rows[start]["game_id"]:
            yield list(rows[start:i])
            start = i


def columns(v: Values | None) -> tuple[float | None, ...]:
    """A play's five value columns (all None for a play without a scrimmage situation)."""
    if v is None:
        return (None, None, None, None, None)
    return (v.ep_before, v.ep_after, v.epa, v.wp_before, v.wp_after)


class Valuer:
    """Values the plays of one service's (plays, games) tables; `live` selects the plays that count
    (query keeps deleted plays as tombstones)."""

    def __init__(self, plays: str, games: str, live: str = "true") -> None:
        self.plays, self.games = plays, games
        self._read = (
            "SELECT game_id, season, play_id, home, sequence, quarter, clock, down, yards_to_go, yardline_100, "
            f"offense, defense, play_type, home_score, away_score, game_status, {', '.join(VALUE_COLUMNS)}, "
            f"value_model FROM {plays} WHERE game_id = ANY($1::text[]) AND {live} "
            "ORDER BY game_id, sequence, play_id"
        )
        self._write = (
            f"UPDATE {plays} AS t SET ep_before = u.ep_before, ep_after = u.ep_after, epa = u.epa, "
            "wp_before = u.wp_before, wp_after = u.wp_after, value_model = u.value_model "
            "FROM unnest($1::text[], $2::int[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], "
            "$7::float8[], $8::text[]) AS u(play_id, season, ep_before, ep_after, epa, wp_before, wp_after, "
            "value_model) WHERE t.play_id = u.play_id AND t.season = u.season"
        )
        self._mark = f"UPDATE {games} SET value_model = $2 WHERE game_id = ANY($1::text[])"
        self._unmark = f"UPDATE {games} SET value_model = NULL WHERE game_id = ANY($1::text[])"
        self._unvalued = (
            f"SELECT game_id FROM {games} WHERE value_model IS DISTINCT FROM $1 ORDER BY game_id LIMIT $2"
        )
        self._count = f"SELECT count(*) FROM {games} WHERE value_model IS DISTINCT FROM $1"
        self._plays_metric = _PLAYS.labels(plays)
        self._unvalued_metric = _UNVALUED.labels(plays)

    async def revalue(
        self, conn: asyncpg.Connection, models: ModelFile, game_ids: Iterable[str], reason: str
    ) -> int:
        """Value these games' plays with the current model, inside the caller's transaction, after
        their games rows exist; the rows written (those whose values or model changed). Nothing
        without a model."""
        model = models.model
        ids = sorted(set(game_ids))
        if model is None or not ids:
            return 0
        rows = await conn.fetch(self._read, ids)
        changes: list[tuple[Any, ...]] = []
        for game in _groups(rows):
            values = model.game_values(game[0]["home"], [Stored.of(r) for r in game])
            for r, v in zip(game, values, strict=True):
                new = columns(v)
                if r["value_model"] != model.version or tuple(r[c] for c in VALUE_COLUMNS) != new:
                    changes.append((r["play_id"], r["season"], *new, model.version))
        if changes:
            await conn.execute(self._write, *(list(col) for col in zip(*changes, strict=True)))
        await conn.execute(self._mark, ids, model.version)
        self._plays_metric.inc(len(changes))
        _GAMES.labels(self.plays, reason).inc(len(ids))
        return len(changes)

    async def defer(self, conn: asyncpg.Connection, game_ids: Iterable[str]) -> None:
        """Mark these games unvalued: the background pass values them (history, after an import)."""
        if ids := sorted(set(game_ids)):
            await conn.execute(self._unmark, ids)

    async def backfill(self, db: Dependency[Pools], models: ModelFile, swap_lock: int | None, after: AfterChunk,
                       chunk: int = 20, pause: float = 0.0) -> int:  # fmt: skip
        """Value every game the current model has not valued, `chunk` games a transaction, each
        chunk followed by `after` in its transaction; the games valued."""
        done = 0
        while (model := models.model) is not None:
            async with db.get().primary.acquire() as conn, conn.transaction():
                await share_swap_lock(conn, swap_lock)
                ids = [r["game_id"] for r in await conn.fetch(self._unvalued, model.version, chunk)]
                if not ids:
                    self._unvalued_metric.set(0)
                    return done
                await self.revalue(conn, models, ids, "backfill")
                await after(conn, ids)
            done += len(ids)
            if pause:
                await asyncio.sleep(pause)  # leaves the consumer and the readers their share
        return done

    async def keep_valued(self, db: Dependency[Pools], models: ModelFile, swap_lock: int | None, after: AfterChunk,
                          every: float) -> None:  # fmt: skip
        """The background task: read the model file again every `every` seconds and value what the
        model in use has not valued (every game, when a new model appears)."""
        await db.wait()
        while True:
            models.refresh()
            if models.model is not None:
                count = await db.get().primary.fetchval(self._count, models.model.version)
                self._unvalued_metric.set(count)
                if count:
                    log.info(
                        "epwp_backfill_started", table=self.plays, games=count, model=models.model.version
                    )
                    done = await self.backfill(db, models, swap_lock, after, pause=0.01)
                    log.info("epwp_backfill_done", table=self.plays, games=done, model=models.model.version)
            await asyncio.sleep(every)
