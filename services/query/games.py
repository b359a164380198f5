"""Games and teams as the projected plays know them."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared import params as p
from shared.errors import ApiError

GAME_PARAMS: dict[str, p.Parser] = {
    "season": p.integers(1920, 2100),
    "season_type": p.choice(p.SEASON_TYPES),
    "week": p.integers(0, 30),
    "team": p.texts(4, upper=True),
    "limit": p.integer(1, 500),
}
_GAME = "SELECT game_id, season, season_type, week, home, away FROM games"


async def list_games(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    values = p.parse_params(query, GAME_PARAMS)
    clauses, args = [], []
    for name in ("season", "season_type", "week"):
        if name in values:
            args.append(values[name])
            clauses.append(f"{name} = ANY(${len(args)})")
    if "team" in values:
        args.append(values["team"])
        clauses.append(f"(home = ANY(${len(args)}) OR away = ANY(${len(args)}))")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    limit = values.get("limit", 500)
    rows = await pool.fetch(f"{_GAME}{where} ORDER BY season, week, game_id LIMIT {limit:d}", *args)
    return {"items": [dict(r) for r in rows]}


async def get_game(pool: asyncpg.Pool, game_id: str) -> dict[str, Any]:
    game = await pool.fetchrow(f"{_GAME} WHERE game_id = $1", game_id)
    if game is None:
        raise ApiError(404, "not_found", f"no game with id {game_id!r}")
    drives = await pool.fetch(
        "SELECT drive, min(sequence) AS first_sequence, count(*) AS plays, sum(yards_gained) AS yards, "
        "bool_or(touchdown) AS touchdown, min(offense) AS offense FROM plays "
        "WHERE game_id = $1 AND season = $2 AND NOT deleted AND drive IS NOT NULL "
        "GROUP BY drive ORDER BY drive",
        game_id, game["season"],
    )  # fmt: skip
    return {**dict(game), "teams": [game["home"], game["away"]], "drives": [dict(d) for d in drives]}


async def list_teams(pool: asyncpg.Pool) -> dict[str, Any]:
    rows = await pool.fetch(
        "SELECT team, min(season) AS first_season, max(season) AS last_season FROM "
        "(SELECT home AS team, season FROM games UNION ALL SELECT away, season FROM games) t "
        "GROUP BY team ORDER BY team"
    )
    return {"items": [dict(r) for r in rows]}
