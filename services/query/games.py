"""Games and teams as the projected plays know them."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared import params as p
from shared.errors import ApiError
from shared.teams import BY_ID, franchise

GAME_PARAMS: dict[str, p.Parser] = {
    "season": p.integers(1920, 2100),
    "season_type": p.choice(p.SEASON_TYPES),
    "week": p.integers(0, 30),
    "team": p.teams(),
    "limit": p.integer(1, 500),
    "cursor": p.text(512),
}
_GAME = "SELECT game_id, season, season_type, week, home, away FROM games"
# The last row's (season, week, game_id): games in season, week and id order.
CURSOR = p.Cursor(p.SeasonField, p.NaturalField, p.IdField)
DEFAULT_LIMIT = 500


async def list_games(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    return await page_games(pool, p.parse_params(query, GAME_PARAMS))


def tags(values: dict[str, Any]) -> list[str]:
    """What a game list reads: its seasons, else all."""
    return sorted(f"season:{s}" for s in set(values["season"])) if "season" in values else ["all"]


async def page_games(pool: asyncpg.Pool, values: dict[str, Any]) -> dict[str, Any]:
    clauses, args = [], []
    for name in ("season", "season_type", "week"):
        if name in values:
            args.append(values[name])
            clauses.append(f"{name} = ANY(${len(args)})")
    if "team" in values:
        args.append(values["team"])
        clauses.append(f"(home = ANY(${len(args)}) OR away = ANY(${len(args)}))")
    if "cursor" in values:
        args.extend(CURSOR.decode(values["cursor"]))
        clauses.append(f"(season, week, game_id) > (${len(args) - 2}, ${len(args) - 1}, ${len(args)})")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    limit = values.get("limit", DEFAULT_LIMIT)
    rows = await pool.fetch(f"{_GAME}{where} ORDER BY season, week, game_id LIMIT {limit + 1:d}", *args)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return {
        "items": [dict(r) for r in rows],
        "next_cursor": CURSOR.encode(last["season"], last["week"], last["game_id"]) if last else None,
    }


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
    ends = await pool.fetch(
        "SELECT DISTINCT ON (quarter) quarter, home_score, away_score, game_status FROM plays "
        "WHERE game_id = $1 AND season = $2 AND NOT deleted AND quarter IS NOT NULL AND home_score IS NOT NULL "
        "ORDER BY quarter, sequence DESC",
        game_id, game["season"],
    )  # fmt: skip
    return {
        **dict(game),
        "teams": [game["home"], game["away"]],
        **score_by_quarter(ends),
        "drives": [dict(d) for d in drives],
    }


def score_by_quarter(ends: list[asyncpg.Record]) -> dict[str, Any]:
    """`score` (the latest, and the points of each quarter played so far; quarter 5 is overtime)
    and `status`, from the score after the last play of each quarter; both null when the game's
    events carry no score."""
    if not ends:
        return {"score": None, "status": None}
    quarters, home, away = [], 0, 0
    for end in ends:
        quarters.append(
            {"quarter": end["quarter"], "home": end["home_score"] - home, "away": end["away_score"] - away}
        )
        home, away = end["home_score"], end["away_score"]
    return {"score": {"home": home, "away": away, "by_quarter": quarters}, "status": ends[-1]["game_status"]}


async def list_teams(pool: asyncpg.Pool) -> dict[str, Any]:
    """One item per franchise the games name, with its name and the codes it played under in
    them (shared.teams); a code no franchise has is a team of its own, without a name."""
    rows = await pool.fetch(
        "SELECT team, min(season) AS first_season, max(season) AS last_season FROM "
        "(SELECT home AS team, season FROM games UNION ALL SELECT away, season FROM games) t "
        "GROUP BY team ORDER BY team"
    )
    by_team: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        f = franchise(r["team"])
        by_team.setdefault(f.id if f else r["team"], []).append(r)
    items = []
    for team, codes in sorted(by_team.items()):
        f = BY_ID.get(team)
        codes.sort(key=lambda r: (r["first_season"], r["team"]))
        last = max(r["last_season"] for r in codes)
        items.append({
            "team": team,
            "name": f.era(last).name if f else None,
            "first_season": min(r["first_season"] for r in codes),
            "last_season": last,
            "codes": [{"code": r["team"], "name": f.era(r["last_season"]).name if f else None,
                       "first_season": r["first_season"], "last_season": r["last_season"]} for r in codes],
        })  # fmt: skip
    return {"items": items}
