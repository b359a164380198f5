"""Reads of an archived season (`snapline archive`, services/query/archive.py) answer 410, or 503
while the season is restored on demand (shared/ondemand.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from shared.errors import ApiError, season_archived

MARKS = "archived_seasons"  # written only by shared/archive.py for services/query/archive.py
_SQL = (
    f"SELECT season FROM {MARKS} WHERE season = ANY($1::int[]) OR game_ids && $2::text[] "
    "ORDER BY season LIMIT 1"
)
Refusal = Callable[[int], ApiError]  # season -> the answer (shared.ondemand.Restorer.refusal)
Compute = Callable[[asyncpg.Pool], Awaitable[Any]]


async def refuse(
    pool: asyncpg.Pool, seasons: Sequence[int] = (), game_ids: Sequence[str] = (),
    refusal: Refusal = season_archived,
) -> None:  # fmt: skip
    """Raise `refusal` (410 season_archived) if a season asked for, or a game's season, is archived."""
    if seasons or game_ids:
        season = await pool.fetchval(_SQL, list(seasons), list(game_ids))
        if season is not None:
            raise refusal(season)


def checked(
    compute: Compute,
    seasons: Sequence[int] = (),
    game_ids: Sequence[str] = (),
    refusal: Refusal = season_archived,
) -> Compute:
    """`compute`, first refusing archived seasons and games. Runs only when no kept answer is valid:
    archiving and restoring raise the season's generations, so no answer of either side survives."""

    async def run(pool: asyncpg.Pool) -> Any:
        await refuse(pool, seasons, game_ids, refusal)
        return await compute(pool)

    return run


def missing_game(compute: Compute, game_id: str, refusal: Refusal = season_archived) -> Compute:
    """`compute` of one game's (or play's) answer: its 404 becomes the refusal when the game's season
    is archived (checked only then: a game found is not archived)."""

    async def run(pool: asyncpg.Pool) -> Any:
        try:
            return await compute(pool)
        except ApiError as exc:
            if exc.status == 404:
                await refuse(pool, game_ids=[game_id], refusal=refusal)
            raise

    return run
