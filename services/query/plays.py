"""The filtered play list: parameters to SQL, keyset pagination, rows to API shape."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared import params as p
from shared.errors import ApiError
from shared.params import Where

PLAY_PARAMS: dict[str, p.Parser] = {
    **p.situation(),
    "game_id": p.texts(),
    "defense": p.teams(),
    "player_id": p.texts(),
    "play_type": p.texts(32),
    "yards_min": p.integer(-120, 120),
    "yards_max": p.integer(-120, 120),
    "touchdown": p.boolean,
    "sack": p.boolean,
    "pressure": p.boolean,
    "formation": p.text(128),
    "personnel": p.text(128),
    "limit": p.integer(1, 500),
    "cursor": p.text(512),
    "sort": p.choice(frozenset({"newest", "oldest"}), upper=False),
}
# filter name -> (SQL with {} for the placeholder, how the value binds)
_LISTS = {"season": "season", "season_type": "season_type", "game_id": "game_id", "team": "offense",
          "defense": "defense", "quarter": "quarter", "down": "down", "play_type": "play_type"}  # fmt: skip
_BOUNDS = {"week_min": "week >=", "week_max": "week <=", "ytg_min": "yards_to_go >=",
           "ytg_max": "yards_to_go <=", "yardline_min": "yardline_100 >=", "yardline_max": "yardline_100 <=",
           "yards_min": "yards_gained >=", "yards_max": "yards_gained <="}  # fmt: skip
_FLAGS = ("touchdown", "sack", "pressure")
SELECT = (
    "SELECT play_id, game_id, season, season_type, week, quarter, clock, down, yards_to_go, yardline_100, "
    "offense, defense, play_type, yards_gained, touchdown, turnover, penalty, sack, pressure, description, "
    "drive, sequence, revision, home_score, away_score, game_status, ep_before, ep_after, epa, wp_before, "
    "wp_after, formation, personnel, participants, stats "
    "FROM plays"
)
_JSON_COLUMNS = ("formation", "personnel", "participants", "stats")
# The last row's (season, game_id, sequence, play_id).
CURSOR = p.Cursor(p.SeasonField, p.IdField, p.NaturalField, p.IdField)


def where(values: dict[str, Any]) -> Where:
    w = Where(base="NOT deleted")
    for name, column in _LISTS.items():
        if name in values:
            w.add(f"{column} = ANY({{}})", values[name])
    for name, op in _BOUNDS.items():
        if name in values:
            w.add(f"{op} {{}}", values[name])
    for name in _FLAGS:
        if name in values:
            w.add(f"{name} = {{}}", values[name])
    if "player_id" in values:
        w.add("player_ids && {}::text[]", values["player_id"])
    for name in ("formation", "personnel"):
        if name in values:
            w.add(f"EXISTS (SELECT 1 FROM jsonb_each_text({name}) kv WHERE kv.value = {{}})", values[name])
    return w


def encode_cursor(r: asyncpg.Record) -> str:
    return CURSOR.encode(r["season"], r["game_id"], r["sequence"], r["play_id"])


def decode_cursor(token: str) -> tuple[Any, ...]:
    return CURSOR.decode(token)


def to_play(r: asyncpg.Record) -> dict[str, Any]:
    """A row in the API's play shape; JSON columns pass through without re-decoding."""
    play = dict(r)
    for name in _JSON_COLUMNS:
        value = play[name]
        play[name] = None if value is None else msgspec.Raw(value.encode())
    return play


async def list_plays(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    return await page_plays(pool, p.parse_params(query, PLAY_PARAMS))


def tags(values: dict[str, Any]) -> list[str]:
    """What a play list reads (services/query/cache.py): its games, else its seasons, else all."""
    if "game_id" in values:
        return sorted(f"game:{g}" for g in set(values["game_id"]))
    if "season" in values:
        return sorted(f"season:{s}" for s in set(values["season"]))
    return ["all"]


def page_sql(values: dict[str, Any]) -> tuple[str, list[Any], int]:
    """The SQL of one page of plays for parsed `values`, its arguments, and the page size (the
    SQL asks for one row more, which says whether there is a next page)."""
    w = where(values)
    newest = values.get("sort", ["newest"])[0] == "newest"
    if "cursor" in values:
        op = "<" if newest else ">"
        w.add(
            f"(season, game_id, sequence, play_id) {op} ({{}}, {{}}, {{}}, {{}})",
            *decode_cursor(values["cursor"]),
        )
    limit = values.get("limit", 50)
    order = "DESC" if newest else "ASC"
    sql = (f"{SELECT} WHERE {w.sql()} ORDER BY season {order}, game_id {order}, sequence {order}, "
           f"play_id {order} LIMIT {limit + 1:d}")  # fmt: skip
    return sql, w.args, limit


async def page_plays(pool: asyncpg.Pool, values: dict[str, Any]) -> dict[str, Any]:
    sql, args, limit = page_sql(values)
    rows = await pool.fetch(sql, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [to_play(r) for r in rows], "next_cursor": encode_cursor(rows[-1]) if more else None}


async def get_play(pool: asyncpg.Pool, play_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(f"{SELECT} WHERE play_id = $1 AND NOT deleted", play_id)
    if row is None:
        raise ApiError(404, "not_found", f"no play with id {play_id!r}")
    return to_play(row)
