"""The ingested history as games of plays in order: what `snapline model fit` learns from.

Read-only, from the replica when there is one; query owns `plays`, so its reading lives here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg

from shared.epwp import GamePlays, Situation, Stored

_SQL = (
    "SELECT game_id, season, home, sequence, quarter, clock, down, yards_to_go, yardline_100, offense, "
    "defense, play_type, home_score, away_score, game_status FROM plays WHERE NOT deleted "
    "ORDER BY game_id, sequence, play_id"
)


async def games(url: str) -> AsyncIterator[GamePlays]:
    """Every game with plays, its plays in game order, streamed through a cursor."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(readonly=True):
            current: str | None = None
            plays: list[Situation] = []
            season, home = 0, ""
            async for r in conn.cursor(_SQL, prefetch=5000):
                if r["game_id"] != current:
                    if plays:
                        yield GamePlays(season, home, plays)
                    current, season, home, plays = r["game_id"], r["season"], r["home"], []
                plays.append(Stored.of(r))
            if plays:
                yield GamePlays(season, home, plays)
    finally:
        await conn.close()
