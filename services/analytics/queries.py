"""Read side of the aggregates: player stats, leaders and defensive rankings."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.analytics.epa import DEFAULT_SEASON_TYPE, SEASON_TYPES, season_types
from services.analytics.index import DefenderIndex
from shared import params as p
from shared.errors import ApiError
from shared.params import Where
from shared.stats import CREDITS

GROUPS = ("passing", "rushing", "receiving", "defense")
FIELDS: dict[str, list[str]] = {g: [] for g in GROUPS}
for _credits in CREDITS.values():
    for _group, _field, _ in _credits:
        if _field not in FIELDS[_group]:
            FIELDS[_group].append(_field)
FIELDS["defense"] += ["snaps", "pressures"]
STATS = frozenset(f"{g}.{f}" for g, fs in FIELDS.items() for f in fs)

# Season types default to the regular season; `ALL` is every game (the answers say which).
STATS_PARAMS: dict[str, p.Parser] = {
    "season": p.integers(1920, 2100),
    "season_type": p.choice(SEASON_TYPES),
    "week_min": p.integer(0, 30),
    "week_max": p.integer(0, 30),
}
LEADER_PARAMS: dict[str, p.Parser] = {
    **STATS_PARAMS,
    "stat": p.choice(STATS, upper=False),
    "limit": p.integer(1, 100),
}
PRESSURE_PARAMS: dict[str, p.Parser] = {
    **p.situation(),
    "season_type": p.choice(SEASON_TYPES),
    "position": p.texts(8, upper=True),
    "min_snaps": p.integer(1, 100000),
    "limit": p.integer(1, 100),
}


def _period(values: dict[str, Any], w: Where) -> None:
    if "season" in values:
        w.add("season = ANY({})", values["season"])
    if (types := season_types(values)) is not None:
        w.add("season_type = ANY({})", types)
    if "week_min" in values:
        w.add("week >= {}", values["week_min"])
    if "week_max" in values:
        w.add("week <= {}", values["week_max"])


async def player_stats(pool: asyncpg.Pool, player_id: str, query: dict[str, str]) -> dict[str, Any]:
    values = p.parse_params(query, STATS_PARAMS)
    w = Where(base="subject_kind = 'player'")
    w.add("subject_id = {}", player_id)
    _period(values, w)
    rows = await pool.fetch(
        f"SELECT stat, sum(value) AS total FROM stat_totals WHERE {w.sql()} GROUP BY stat", *w.args
    )
    person = await pool.fetchrow("SELECT name, team, position FROM players WHERE player_id = $1", player_id)
    if person is None and not rows:
        raise ApiError(404, "not_found", f"no player with id {player_id!r} in the aggregates")
    totals = {r["stat"]: r["total"] for r in rows}
    out: dict[str, Any] = {
        "player_id": player_id,
        "name": person["name"] if person else None,
        "team": person["team"] if person else None,
        "position": person["position"] if person else None,
        "season": values["season"][0] if len(values.get("season", [])) == 1 else None,
        "season_type": _types(values),
    }
    for group, fields in FIELDS.items():
        out[group] = {f: _number(totals.get(f"{group}.{f}", 0.0)) for f in fields}
    return out


def _types(values: dict[str, Any]) -> list[str]:
    """The season types an answer counts, as asked (the regular season when not asked)."""
    return list(values.get("season_type", [DEFAULT_SEASON_TYPE]))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


async def leaders(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    values = p.parse_params(query, LEADER_PARAMS)
    if "stat" not in values:
        raise ApiError(400, "invalid_parameters", "stat is required",
                       [{"field": "stat", "message": f"one of {', '.join(sorted(STATS))}"}])  # fmt: skip
    w = Where(base="subject_kind = 'player'")
    w.add("stat = {}", values["stat"][0])
    _period(values, w)
    rows = await pool.fetch(
        f"SELECT t.subject_id AS player_id, pl.name, pl.team, pl.position, sum(t.value) AS value "
        f"FROM stat_totals t LEFT JOIN players pl ON pl.player_id = t.subject_id WHERE {w.sql()} "
        f"GROUP BY t.subject_id, pl.name, pl.team, pl.position ORDER BY value DESC, t.subject_id "
        f"LIMIT {values.get('limit', 10):d}",
        *w.args,
    )  # fmt: skip
    return {
        "stat": values["stat"][0],
        "season_type": _types(values),
        "items": [{**dict(r), "value": _number(r["value"])} for r in rows],
    }


async def pressure_leaders(
    pool: asyncpg.Pool, query: dict[str, str], index: DefenderIndex | None = None
) -> dict[str, Any]:
    """From the in-process index when there is one in use (services/analytics/index.py), else SQL:
    the same rows either way (tests/analytics/test_index.py)."""
    values = p.parse_params(query, PRESSURE_PARAMS)
    if index is not None and (items := await index.pressure_leaders(pool, values)) is not None:
        return {"season_type": _types(values), "items": items}
    sql, args = pressure_sql(values)
    rows = await pool.fetch(sql, *args)
    return {"season_type": _types(values), "items": [{**dict(r), "sacks": _number(r["sacks"])} for r in rows]}


def pressure_sql(values: dict[str, Any]) -> tuple[str, list[Any]]:
    """The ranking's SQL over `defender_plays` for parsed parameters (also the benchmark's raw baseline)."""
    w = Where(base="true")
    _period(values, w)
    for name, column in (("team", "d.team"), ("quarter", "quarter"), ("down", "down")):
        if name in values:
            w.add(f"{column} = ANY({{}})", values[name])
    for name, op in (("ytg_min", "yards_to_go >="), ("ytg_max", "yards_to_go <="),
                     ("yardline_min", "yardline_100 >="), ("yardline_max", "yardline_100 <=")):  # fmt: skip
        if name in values:
            w.add(f"{op} {{}}", values[name])
    if "position" in values:
        w.add("pl.position = ANY({})", values["position"])
    having = f"HAVING count(*) >= {values.get('min_snaps', 50):d}"
    sql = (
        "SELECT d.player_id, pl.name, min(d.team) AS team, pl.position, count(*) AS snaps, "
        "count(*) FILTER (WHERE d.pressure) AS pressures, sum(d.sacks) AS sacks, "
        "round(count(*) FILTER (WHERE d.pressure)::numeric / count(*), 4)::float8 AS pressure_rate "
        f"FROM defender_plays d LEFT JOIN players pl ON pl.player_id = d.player_id WHERE {w.sql()} "
        f"GROUP BY d.player_id, pl.name, pl.position {having} "
        f"ORDER BY pressure_rate DESC, d.player_id LIMIT {values.get('limit', 20):d}"
    )
    return sql, w.args
