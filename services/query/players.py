"""The player directory: every player the plays name, searchable by name, team, position, season."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from shared import params as p
from shared.errors import ApiError
from shared.events import Participant

PLAYER_PARAMS: dict[str, p.Parser] = {
    "q": p.text(64),
    "team": p.teams(),
    "position": p.texts(8, upper=True),
    "season": p.integers(1920, 2100),
    "limit": p.integer(1, 500),
    "cursor": p.text(512),
}
# The last row's (name_key, player_id); a player without a name sorts as "".
CURSOR = p.Cursor(p.TextField, p.IdField)
DEFAULT_LIMIT = 100

_participants = msgspec.json.Decoder(list[Participant])
_FOLD = re.compile(r"[^0-9a-z]+")


def name_key(name: str | None) -> str | None:
    """`name` folded for search: accents and case gone, "." and "'" dropped inside words
    ("J.J." -> "jj", "O'Neil" -> "oneil"), every other run of non-alphanumerics one space."""
    if name is None:
        return None
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    plain = plain.replace(".", "").replace("'", "").replace("\u2019", "")
    return _FOLD.sub(" ", plain).strip()


UPSERT_SQL = (
    "INSERT INTO player_teams (player_id, season, team, name, name_key, position) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[]) "
    "ON CONFLICT (player_id, season, team) DO UPDATE SET "
    "name = COALESCE(player_teams.name, EXCLUDED.name), name_key = COALESCE(player_teams.name_key, EXCLUDED.name_key), "
    "position = COALESCE(player_teams.position, EXCLUDED.position) "
    "WHERE (player_teams.name IS NULL AND EXCLUDED.name IS NOT NULL) "
    "OR (player_teams.position IS NULL AND EXCLUDED.position IS NOT NULL)"
)


def player_rows(plays: Iterable[tuple[int, bytes]]) -> list[tuple[Any, ...]]:
    """The `player_teams` rows of plays given as (season, raw participants JSON): one per
    (player, season, team), in key order (concurrent writers take row locks in the same order)."""
    rows: dict[tuple[str, int, str], tuple[str | None, str | None]] = {}
    for season, raw in plays:
        for part in _participants.decode(raw):
            key = (part.player_id, season, part.team)
            name, position = rows.get(key, (None, None))
            rows[key] = (name or part.name, position or part.position)
    return [(*k, name, name_key(name), pos) for k, (name, pos) in sorted(rows.items())]


async def write_players(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await conn.execute(UPSERT_SQL, *(list(col) for col in zip(*rows, strict=True)))


_SUMMARY = (
    "SELECT player_id, coalesce(max(name_key), '') AS sort_key, max(name) AS name, max(position) AS position, "
    "min(season) AS first_season, max(season) AS last_season, "
    "array_agg(DISTINCT team ORDER BY team) AS teams FROM player_teams"
)


def _summary(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "player_id": r["player_id"],
        "name": r["name"],
        "position": r["position"],
        "teams": list(r["teams"]),
        "first_season": r["first_season"],
        "last_season": r["last_season"],
    }


async def list_players(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    return await page_players(pool, p.parse_params(query, PLAYER_PARAMS))


def tags(values: dict[str, Any]) -> list[str]:
    """What a player list reads: its seasons, else all."""
    return sorted(f"season:{s}" for s in set(values["season"])) if "season" in values else ["all"]


async def page_players(pool: asyncpg.Pool, values: dict[str, Any]) -> dict[str, Any]:
    """Players matching every filter, by folded name then id. `q` matches the start of the name
    or of any word in it ("wat" finds J.J. Watt, "jj w" too); `team`, `position` and `season`
    match a player one of whose seasons matches all three."""
    match = p.Where()
    if "q" in values:
        q = name_key(values["q"])
        if not q:
            raise ApiError(400, "invalid_parameters", "invalid query parameters: q",
                           [{"field": "q", "message": "has no letter or digit to search for"}])  # fmt: skip
        match.add(
            "player_id IN (SELECT player_id FROM player_teams WHERE name_key LIKE {} OR name_key LIKE {})",
            _like_prefix(q), "% " + _like_prefix(q),
        )  # fmt: skip
    seasonal = [name for name in ("team", "position", "season") if name in values]
    if seasonal:
        inner = " AND ".join(f"{name} = ANY({{}})" for name in seasonal)
        match.add(
            f"player_id IN (SELECT player_id FROM player_teams WHERE {inner})", *(values[n] for n in seasonal)
        )
    args = list(match.args)
    having = ""
    if "cursor" in values:
        args.extend(CURSOR.decode(values["cursor"]))
        having = f" HAVING (coalesce(max(name_key), ''), player_id) > (${len(args) - 1}, ${len(args)})"
    limit = values.get("limit", DEFAULT_LIMIT)
    sql = (
        f"{_SUMMARY} WHERE {match.sql()} "
        f"GROUP BY player_id{having} ORDER BY sort_key, player_id LIMIT {limit + 1:d}"
    )
    rows = await pool.fetch(sql, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [_summary(r) for r in rows],
        "next_cursor": CURSOR.encode(rows[-1]["sort_key"], rows[-1]["player_id"]) if more else None,
    }


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def get_player(pool: asyncpg.Pool, player_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(f"{_SUMMARY} WHERE player_id = $1 GROUP BY player_id", player_id)
    if row is None:
        raise ApiError(404, "not_found", f"no player with id {player_id!r}")
    seasons = await pool.fetch(
        "SELECT season, team, position FROM player_teams WHERE player_id = $1 ORDER BY season, team",
        player_id,
    )
    return {**_summary(row), "seasons": [dict(s) for s in seasons]}
