"""Expected points and win probability stored with each of query's plays (`plays`, `games`).

shared/valuing.py does the work (a game is valued whole, in the projector's transaction; a
background pass values what the model in use has not); this module names query's tables and
what a background chunk bumps in its answer cache.
"""

from __future__ import annotations

import asyncpg

from services.query.cache import bump
from shared.db import Pools
from shared.deps import Dependency
from shared.epwp import ModelFile
from shared.valuing import VALUE_COLUMNS, Valuer, columns

__all__ = ["VALUER", "VALUE_COLUMNS", "after_chunk", "backfill", "columns", "keep_valued"]

VALUER = Valuer("plays", "games", live="NOT deleted")


async def after_chunk(conn: asyncpg.Connection, ids: list[str]) -> None:
    """A background chunk bumps its games' cache generations, like a batch."""
    rows = await conn.fetch("SELECT season, home, away FROM games WHERE game_id = ANY($1::text[])", ids)
    tags = {"all", *(f"game:{g}" for g in ids)}
    for r in rows:
        tags.update((f"season:{r['season']}", f"team:{r['home']}", f"team:{r['away']}"))
    await bump(conn, sorted(tags))


async def backfill(db: Dependency[Pools], models: ModelFile, swap_lock: int | None,
                   chunk: int = 20, pause: float = 0.0) -> int:  # fmt: skip
    """Value every game the current model has not valued; the games valued."""
    return await VALUER.backfill(db, models, swap_lock, after_chunk, chunk, pause)


async def keep_valued(db: Dependency[Pools], models: ModelFile, swap_lock: int | None, every: float) -> None:
    await VALUER.keep_valued(db, models, swap_lock, after_chunk, every)
