"""Expected points and win probability stored with each play (shared/epwp.py computes them).

A play's values depend on its neighbours (the score before it, the next snap's situation), so a
game is valued whole: after every batch the projector revalues the games it wrote, in the same
transaction (a correction or a delete moves its neighbours' values too), and writes only the rows
whose values changed. A background pass values the games a model has not valued yet: every game
when a new model is fitted, and what was projected while there was none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from services.query.cache import bump
from shared.db import Pools, share_swap_lock
from shared.deps import Dependency
from shared.epwp import ModelFile, Stored, Values
from shared.logging import get_logger

log = get_logger(__name__)

VALUE_COLUMNS = ("ep_before", "ep_after", "epa", "wp_before", "wp_after")
_READ = (
    "SELECT game_id, season, play_id, home, sequence, quarter, clock, down, yards_to_go, yardline_100, "
    "offense, defense, play_type, home_score, away_score, game_status, "
    f"{', '.join(VALUE_COLUMNS)}, value_model "
    "FROM plays WHERE game_id = ANY($1::text[]) AND NOT deleted ORDER BY game_id, sequence, play_id"
)
_WRITE = (
    "UPDATE plays SET ep_before = u.ep_before, ep_after = u.ep_after, epa = u.epa, "
    "wp_before = u.wp_before, wp_after = u.wp_after, value_model = u.value_model "
    "FROM unnest($1::text[], $2::int[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], "
    "$7::float8[], $8::text[]) AS u(play_id, season, ep_before, ep_after, epa, wp_before, wp_after, value_model) "
    "WHERE plays.play_id = u.play_id AND plays.season = u.season"
)
_MARK = "UPDATE games SET value_model = $2 WHERE game_id = ANY($1::text[])"
_UNVALUED = "SELECT game_id FROM games WHERE value_model IS DISTINCT FROM $1 ORDER BY game_id LIMIT $2"

VALUED_PLAYS = Counter("snapline_query_valued_plays_total", "Plays whose EP/WP values were written")
VALUED_GAMES = Counter("snapline_query_valued_games_total", "Games revalued, by why", ["reason"])
UNVALUED_GAMES = Gauge(
    "snapline_query_unvalued_games", "Games the current EP/WP model has not valued yet (last pass)"
)


def _groups(rows: Sequence[asyncpg.Record]) -> Iterable[list[asyncpg.Record]]:
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["game_id"] != rows[start]["game_id"]:
            yield list(rows[start:i])
            start = i


async def revalue(conn: asyncpg.Connection, models: ModelFile, game_ids: Iterable[str], reason: str) -> int:
    """Value these games' plays with the current model, inside the caller's transaction; the
    rows written (those whose values or model changed). Nothing without a model."""
    model = models.model
    ids = sorted(set(game_ids))
    if model is None or not ids:
        return 0
    rows = await conn.fetch(_READ, ids)
    changes: list[tuple[Any, ...]] = []
    for game in _groups(rows):
        values = model.game_values(game[0]["home"], [Stored.of(r) for r in game])
        for r, v in zip(game, values, strict=True):
            new = _columns(v)
            if r["value_model"] != model.version or tuple(r[c] for c in VALUE_COLUMNS) != new:
                changes.append((r["play_id"], r["season"], *new, model.version))
    if changes:
        await conn.execute(_WRITE, *(list(col) for col in zip(*changes, strict=True)))
    await conn.execute(_MARK, ids, model.version)
    VALUED_PLAYS.inc(len(changes))
    VALUED_GAMES.labels(reason).inc(len(ids))
    return len(changes)


def _columns(v: Values | None) -> tuple[float | None, ...]:
    if v is None:
        return (None, None, None, None, None)
    return (v.ep_before, v.ep_after, v.epa, v.wp_before, v.wp_after)


async def backfill(db: Dependency[Pools], models: ModelFile, swap_lock: int | None,
                   chunk: int = 20, pause: float = 0.0) -> int:  # fmt: skip
    """Value every game the current model has not valued, `chunk` games a transaction; the
    games valued. Each chunk bumps its games' cache generations, like a batch."""
    done = 0
    while (model := models.model) is not None:
        async with db.get().primary.acquire() as conn, conn.transaction():
            await share_swap_lock(conn, swap_lock)
            ids = [r["game_id"] for r in await conn.fetch(_UNVALUED, model.version, chunk)]
            if not ids:
                UNVALUED_GAMES.set(0)
                return done
            await revalue(conn, models, ids, "backfill")
            await bump(conn, sorted({"all", *(f"game:{g}" for g in ids)} | await _tags(conn, ids)))
        done += len(ids)
        if pause:
            await asyncio.sleep(pause)  # leaves the projector and the readers their share
    return done


async def _tags(conn: asyncpg.Connection, ids: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT season, home, away FROM games WHERE game_id = ANY($1::text[])", ids)
    out: set[str] = set()
    for r in rows:
        out.update((f"season:{r['season']}", f"team:{r['home']}", f"team:{r['away']}"))
    return out


async def keep_valued(db: Dependency[Pools], models: ModelFile, swap_lock: int | None, every: float) -> None:
    """The background task: read the model file again every `every` seconds and value what the
    model in use has not valued (every game, when a new model appears)."""
    await db.wait()
    while True:
        models.refresh()
        if models.model is not None:
            count = await db.get().primary.fetchval(
                "SELECT count(*) FROM games WHERE value_model IS DISTINCT FROM $1", models.model.version
            )
            UNVALUED_GAMES.set(count)
            if count:
                log.info("epwp_backfill_started", games=count, model=models.model.version)
                done = await backfill(db, models, swap_lock, pause=0.01)
                log.info("epwp_backfill_done", games=done, model=models.model.version)
        await asyncio.sleep(every)
