"""EPA aggregates and team tendencies, read from `analytics_plays` (values from shared/epwp.py).

The plays counted are the offense's runs and passes (sacks are passes) with a down: what the
"EPA per play" of nflfastR's users counts. Kickoffs, punts, kicks, penalties that wipe out the
play (`no_play`) and timeouts are not. A play is a success when its EPA is positive. Plays not
valued yet (no model, or a game the background pass has not reached) count for plays, runs,
passes and yards, and not for EPA and success (`valued_plays` says how many did).

Defense figures are the EPA the offense gained against the defense (lower is better), as
nflfastR reports defensive EPA; a defender's are those of the plays the feed names them on.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.analytics.aggregates import PASS_TYPES, RUSH_TYPES
from shared import params as p
from shared.errors import ApiError
from shared.params import Where
from shared.teams import expand, franchise

SEASON_TYPES = frozenset({*p.SEASON_TYPES, "ALL"})
DEFAULT_SEASON_TYPE = "REG"
SCRIMMAGE = sorted(RUSH_TYPES | PASS_TYPES)
# Distance buckets of the tendencies: (name, yards to go from, to), nflfastR-style.
BUCKETS = (("short", 1, 3), ("medium", 4, 7), ("long", 8, 99))

_SITUATION: dict[str, p.Parser] = {**p.situation(), "season_type": p.choice(SEASON_TYPES)}
EPA_PARAMS: dict[str, p.Parser] = {
    **_SITUATION,
    "group": p.choice(frozenset({"team", "player"}), upper=False),
    "side": p.choice(frozenset({"offense", "defense"}), upper=False),
    "min_plays": p.integer(1, 100000),
    "limit": p.integer(1, 500),
}
TENDENCY_PARAMS: dict[str, p.Parser] = {k: v for k, v in _SITUATION.items() if k != "team"}
DEFAULT_MIN_PLAYS = {"team": 1, "player": 50}
DEFAULT_LIMIT = 100


def season_types(values: dict[str, Any]) -> list[str] | None:
    """The season types asked for: the regular season by default, None for `ALL` (every game)."""
    asked = values.get("season_type", [DEFAULT_SEASON_TYPE])
    return None if "ALL" in asked else sorted(set(asked))


def _situation(values: dict[str, Any], w: Where, alias: str = "a") -> None:
    """The situational filters on `analytics_plays` (as `alias`), but `team`, which depends on the side."""
    if "season" in values:
        w.add(f"{alias}.season = ANY({{}})", values["season"])
    if (types := season_types(values)) is not None:
        w.add(f"{alias}.season_type = ANY({{}})", types)
    for name, op in (("week_min", "week >="), ("week_max", "week <="), ("ytg_min", "yards_to_go >="),
                     ("ytg_max", "yards_to_go <="), ("yardline_min", "yardline_100 >="),
                     ("yardline_max", "yardline_100 <=")):  # fmt: skip
        if name in values:
            w.add(f"{alias}.{op} {{}}", values[name])
    for name in ("quarter", "down"):
        if name in values:
            w.add(f"{alias}.{name} = ANY({{}})", values[name])


def _scrimmage(alias: str = "a") -> Where:
    w = Where(base=f"{alias}.down BETWEEN 1 AND 4")
    w.add(f"{alias}.play_type = ANY({{}})", SCRIMMAGE)
    return w


def _figures(alias: str = "a") -> str:
    """plays, valued plays, EPA total and per play, success rate: over the valued plays."""
    return (
        f"count(*) AS plays, count({alias}.epa) AS valued_plays, "
        f"round(sum({alias}.epa)::numeric, 4)::float8 AS epa_total, "
        f"round(avg({alias}.epa)::numeric, 4)::float8 AS epa_per_play, "
        f"round(avg(({alias}.epa > 0)::int)::numeric, 4)::float8 AS success_rate"
    )


async def epa(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    values = p.parse_params(query, EPA_PARAMS)
    missing = [name for name in ("group", "side") if name not in values]
    if missing:
        raise ApiError(400, "invalid_parameters", f"{' and '.join(missing)} required", [
            {"field": name, "message": "required: " + ("team or player" if name == "group" else "offense or defense")}
            for name in missing
        ])  # fmt: skip
    group, side = values["group"][0], values["side"][0]
    if len(values["group"]) > 1 or len(values["side"]) > 1:
        bad = "group" if len(values["group"]) > 1 else "side"
        raise ApiError(
            400, "invalid_parameters", f"one {bad} at a time", [{"field": bad, "message": "one value"}]
        )
    w = _scrimmage()
    _situation(values, w)
    having = f"HAVING count(*) >= {values.get('min_plays', DEFAULT_MIN_PLAYS[group]):d}"
    # Best first: the most EPA per play on offense, the least allowed on defense; valued plays only decide.
    order = f"epa_per_play {'DESC' if side == 'offense' else 'ASC'} NULLS LAST"
    limit = f"LIMIT {values.get('limit', DEFAULT_LIMIT):d}"
    if group == "team":
        column = "a.offense" if side == "offense" else "a.defense"
        if "team" in values:
            w.add(f"{column} = ANY({{}})", values["team"])
        sql = (f"SELECT {column} AS team, {_figures()} FROM analytics_plays a WHERE {w.sql()} AND {column} IS NOT NULL "
               f"GROUP BY {column} {having} ORDER BY {order}, team {limit}")  # fmt: skip
    elif side == "offense":
        if "team" in values:
            w.add("a.offense = ANY({})", values["team"])
        sql = (
            f"SELECT c.player_id, pl.name, pl.position, min(a.offense) AS team, {_figures()} "
            f"FROM analytics_plays a CROSS JOIN LATERAL unnest(a.carriers) AS c(player_id) "
            f"LEFT JOIN players pl ON pl.player_id = c.player_id WHERE {w.sql()} "
            f"GROUP BY c.player_id, pl.name, pl.position {having} ORDER BY {order}, c.player_id {limit}"
        )
    else:
        if "team" in values:
            w.add("d.team = ANY({})", values["team"])
        sql = (
            f"SELECT d.player_id, pl.name, pl.position, min(d.team) AS team, {_figures()} "
            f"FROM analytics_plays a JOIN defender_plays d ON d.season = a.season AND d.play_id = a.play_id "
            f"LEFT JOIN players pl ON pl.player_id = d.player_id WHERE {w.sql()} "
            f"GROUP BY d.player_id, pl.name, pl.position {having} ORDER BY {order}, d.player_id {limit}"
        )
    rows = await pool.fetch(sql, *w.args)
    return {"group": group, "side": side, "season_type": values.get("season_type", [DEFAULT_SEASON_TYPE]),
            "items": [dict(r) for r in rows]}  # fmt: skip


_BUCKET_SQL = (
    "CASE "
    + " ".join(f"WHEN a.yards_to_go BETWEEN {lo} AND {hi} THEN '{name}'" for name, lo, hi in BUCKETS)
    + " END"
)
_RUNS = "a.play_type IN (" + ", ".join(f"'{t}'" for t in sorted(RUSH_TYPES)) + ")"  # fixed names, no input
_ANY_PLAY = "SELECT EXISTS (SELECT 1 FROM analytics_plays WHERE offense = ANY($1::text[]) OR defense = ANY($1::text[]))"
_TENDENCY_FIGURES = (
    f"count(*) FILTER (WHERE {_RUNS}) AS runs, count(*) FILTER (WHERE NOT {_RUNS}) AS passes, "
    "round(avg(a.yards_gained)::numeric, 4)::float8 AS yards_per_play"
)


async def tendencies(pool: asyncpg.Pool, team: str, query: dict[str, str]) -> dict[str, Any]:
    values = p.parse_params(query, TENDENCY_PARAMS)
    code = team.upper()
    if not (1 <= len(code) <= 4 and code.isascii() and code.isalpha()):
        raise ApiError(404, "not_found", f"no team {team[:16]!r}: a team code is 1-4 letters")
    codes = expand([code])
    w = _scrimmage()
    w.add("a.offense = ANY({})", codes)
    _situation(values, w)
    rows = await pool.fetch(
        f"SELECT a.down, {_BUCKET_SQL} AS distance, {_TENDENCY_FIGURES}, {_figures()} "
        f"FROM analytics_plays a WHERE {w.sql()} AND a.yards_to_go >= 1 "
        f"GROUP BY GROUPING SETS ((a.down, {_BUCKET_SQL}), ())",
        *w.args,
    )
    overall = next((r for r in rows if r["down"] is None), None)
    known = franchise(code) is not None or (overall is not None and overall["plays"] > 0)
    if not known and not await pool.fetchval(_ANY_PLAY, codes):
        raise ApiError(404, "not_found", f"no team {code!r} in the plays")
    order = {name: i for i, (name, _, _) in enumerate(BUCKETS)}
    situations = sorted(
        (r for r in rows if r["down"] is not None), key=lambda r: (r["down"], order[r["distance"]])
    )
    return {
        "team": franchise(code).id if franchise(code) else code,  # type: ignore[union-attr]
        "codes": codes,
        "season_type": values.get("season_type", [DEFAULT_SEASON_TYPE]),
        "buckets": [{"name": name, "yards_to_go_min": lo, "yards_to_go_max": hi} for name, lo, hi in BUCKETS],
        "overall": _tendency(overall),
        "situations": [{"down": r["down"], "distance": r["distance"], **_tendency(r)} for r in situations],
    }


def _tendency(r: asyncpg.Record | None) -> dict[str, Any]:
    if r is None or not r["plays"]:
        return {"plays": 0, "runs": 0, "passes": 0, "run_rate": None, "pass_rate": None, "yards_per_play": None,
                "valued_plays": 0, "epa_total": None, "epa_per_play": None, "success_rate": None}  # fmt: skip
    plays = r["plays"]
    return {
        "plays": plays, "runs": r["runs"], "passes": r["passes"],
        "run_rate": round(r["runs"] / plays, 4), "pass_rate": round(r["passes"] / plays, 4),
        "yards_per_play": r["yards_per_play"], "valued_plays": r["valued_plays"], "epa_total": r["epa_total"],
        "epa_per_play": r["epa_per_play"], "success_rate": r["success_rate"],
    }  # fmt: skip
