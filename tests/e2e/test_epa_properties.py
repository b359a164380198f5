"""Random games and random filters through the running stack: for games hypothesis draws, posted
through the gateway and carried by real Kafka to query and analytics, EPA per team and side, team
tendencies and pressure leaders under random situational filters equal a recomputation over query's
`plays` in PostgreSQL, before and after a random batch of corrections and deletes.

Runs against the stack `make test` started (GATEWAY_URL, DATABASE_URL from the environment).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.test_epa import SCRIMMAGE, _code
from tests.factories import event_dict
from tests.stack import GATEWAY, eventually, remove_game

SEASON = 2031
PRESSURE_STATS = {83, 84, 110}  # sack, half sack, quarterback hit
EXAMPLES = 4
FILTERS_PER_STATE = 6

_PLAY = st.fixed_dictionaries(
    {
        "down": st.integers(1, 4), "yards_to_go": st.integers(1, 15), "yardline_100": st.integers(1, 99),
        "play_type": st.sampled_from(["pass", "pass", "run", "sack", "punt"]),
        "yards_gained": st.integers(-10, 40), "home_offense": st.booleans(),
        "credit": st.sampled_from([None, None, 83, 84, 110, 79]),  # 79: a tackle, not a pressure
        "second_defender": st.booleans(),
    }
)  # fmt: skip
_CASE = st.fixed_dictionaries(
    {
        "plays": st.lists(_PLAY, min_size=4, max_size=12),
        "changes": st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["correct", "delete"]), _PLAY),
                            min_size=1, max_size=4),
    }
)  # fmt: skip
_FILTER = st.fixed_dictionaries(
    {},
    optional={
        "quarter": st.sampled_from(["1", "2", "3", "4", "1,3", "2,4"]),
        "down": st.sampled_from(["1", "2", "3", "4", "3,4", "1,2"]),
        "ytg_min": st.integers(1, 10), "ytg_max": st.integers(3, 15),
        "yardline_min": st.integers(1, 60), "yardline_max": st.integers(30, 99),
    },
)  # fmt: skip


def _plays(game_id: str, home: str, away: str, drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Play events for the drawn plays: four quarters in order, each defender a participant of
    every defensive play of its team, the drawn stat credited to one of them."""
    events = []
    for n, d in enumerate(drawn, 1):
        events.append(_event(game_id, home, away, n, len(drawn), d))
    return events


def _event(game_id: str, home: str, away: str, n: int, count: int, d: dict[str, Any]) -> dict[str, Any]:
    offense = home if d["home_offense"] else away
    defense = away if offense == home else home
    quarter = 1 + (n - 1) * 4 // count
    clock = 900 - 60 * ((n - 1) % max(1, count // 4 + 1)) - 20
    first, second = f"{game_id}-{defense}-a", f"{game_id}-{defense}-b"
    stats = [{"stat_id": 10 if d["play_type"] == "run" else 15, "team": offense, "player_id": f"{game_id}-o",
              "yards": d["yards_gained"]}]  # fmt: skip
    if d["credit"] is not None:
        who = second if d["second_defender"] else first
        stats.append({"stat_id": d["credit"], "team": defense, "player_id": who})
    e = event_dict(
        game_id=game_id, play_id=str(n), sequence=n, quarter=quarter, clock=f"{clock // 60}:{clock % 60:02d}",
        down=d["down"], yards_to_go=d["yards_to_go"], yardline_100=d["yardline_100"], offense=offense,
        defense=defense, play_type=d["play_type"], yards_gained=d["yards_gained"], home_score=0, away_score=0,
        game_status="in_progress", description=f"play {n}",
        participants=[{"player_id": first, "team": defense, "side": "defense"},
                      {"player_id": second, "team": defense, "side": "defense"}],
        stats=stats,
    )  # fmt: skip
    e["game"].update(season=SEASON, home=home, away=away)
    return e


def _where(game_id: str, column: str, team: str, f: dict[str, str]) -> tuple[str, list[Any]]:
    """The filters as SQL over `plays`, for one team on one side."""
    clauses, args = ["game_id = $1", f"{column} = $2", "NOT deleted"], [game_id, team]
    for name, expr in (("ytg_min", "yards_to_go >="), ("ytg_max", "yards_to_go <="),
                       ("yardline_min", "yardline_100 >="), ("yardline_max", "yardline_100 <=")):  # fmt: skip
        if name in f:
            args.append(int(f[name]))
            clauses.append(f"{expr} ${len(args)}")
    for name in ("quarter", "down"):
        if name in f:
            args.append([int(v) for v in f[name].split(",")])
            clauses.append(f"{name} = ANY(${len(args)}::int[])")
    return " AND ".join(clauses), args


async def _expected_epa(pool: asyncpg.Pool, game_id: str, column: str, team: str, f: dict[str, str]) -> Any:
    where, args = _where(game_id, column, team, f)
    args.append(SCRIMMAGE)
    row = await pool.fetchrow(
        "SELECT count(*) AS plays, count(epa) AS valued_plays, round(sum(epa)::numeric, 4)::float8 AS epa_total, "
        "round(avg(epa)::numeric, 4)::float8 AS epa_per_play, "
        "round(avg((epa > 0)::int)::numeric, 4)::float8 AS success_rate, "
        "count(*) FILTER (WHERE play_type = 'run') AS runs "
        f"FROM plays WHERE {where} AND down BETWEEN 1 AND 4 AND play_type = ANY(${len(args)}::text[])",
        *args,
    )  # fmt: skip
    return dict(row)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _filter(drawn: dict[str, Any]) -> dict[str, str]:
    """A drawn filter as query parameters, each range the right way round (a reversed one is a 400)."""
    f = dict(drawn)
    for low, high in (("ytg_min", "ytg_max"), ("yardline_min", "yardline_max")):
        if low in f and high in f and f[low] > f[high]:
            f[low], f[high] = f[high], f[low]
    return {k: str(v) for k, v in f.items()}


async def _expected_pressure(pool: asyncpg.Pool, game_id: str, team: str, f: dict[str, str]) -> list[Any]:
    """(player, snaps, pressures) per defender, recounted from the plays' participants and stats,
    in the ranking's order (pressure rate descending, then player id)."""
    where, args = _where(game_id, "defense", team, f)
    counts: dict[str, list[int]] = {}
    for row in await pool.fetch(f"SELECT participants, stats FROM plays WHERE {where}", *args):
        credited = {s["player_id"] for s in _json(row["stats"]) if s["stat_id"] in PRESSURE_STATS}
        for part in _json(row["participants"]):
            if part["side"] == "defense":
                seen = counts.setdefault(part["player_id"], [0, 0])
                seen[0] += 1
                seen[1] += part["player_id"] in credited
    ranked = sorted(counts.items(), key=lambda kv: (-round(kv[1][1] / kv[1][0], 4), kv[0]))
    return [(player, snaps, pressures) for player, (snaps, pressures) in ranked]


@pytest.fixture
async def game_ids(stack_db: asyncpg.Pool) -> AsyncIterator[list[str]]:
    made: list[str] = []
    yield made
    for gid in made:
        await remove_game(stack_db, gid, player_prefix=f"{gid}-")


async def test_random_games_and_filters_match_the_plays_table_through_kafka(
    stack_keys: dict[str, str], stack_db: asyncpg.Pool, unique: str, game_ids: list[str]
) -> None:
    loop = asyncio.get_running_loop()
    feed = {"X-API-Key": stack_keys["feed"]}
    counter = itertools.count()
    async with aiohttp.ClientSession(GATEWAY, headers={"X-API-Key": stack_keys["viewer"]}) as http:

        async def get(path: str, params: dict[str, str]) -> Any:
            r = await http.get(path, params=params)
            assert r.status == 200, (path, params, r.status, await r.text())
            return await r.json()

        async def post(batch: list[dict[str, Any]]) -> None:
            r = await http.post("/v1/events", json=batch, headers=feed)
            assert r.status == 202, await r.text()

        async def applied(game_id: str, revisions: int) -> bool:
            """Query and analytics both committed every event posted (their revisions sum to `revisions`)."""
            q = await stack_db.fetchval("SELECT sum(revision) FROM plays WHERE game_id = $1", game_id)
            a = await stack_db.fetchval(
                "SELECT sum(revision) FROM analytics_play_contrib WHERE play_id LIKE $1", f"{game_id}:%"
            )
            return bool(q == a == revisions)

        async def same_as_sql(game_id: str, teams: tuple[str, str], f: dict[str, str]) -> None:
            base = {"season": str(SEASON), **f}
            for team in teams:
                for side in ("offense", "defense"):
                    want = await _expected_epa(stack_db, game_id, side, team, f)
                    got = await get(
                        "/v1/analytics/epa", {**base, "group": "team", "side": side, "team": team}
                    )
                    figures = {k: v for k, v in want.items() if k != "runs"}
                    assert got["items"] == ([{"team": team, **figures}] if want["plays"] else []), (
                        side,
                        team,
                        f,
                    )
                tendencies = await get(f"/v1/analytics/teams/{team}/tendencies", base)
                want = await _expected_epa(stack_db, game_id, "offense", team, f)
                overall = tendencies["overall"]
                assert overall["plays"] == want["plays"], (team, f)
                if want["plays"]:
                    assert {k: overall[k] for k in want} == want, (team, f)
                ranked = await get(
                    "/v1/analytics/defense/pressure-leaders",
                    {**base, "team": team, "min_snaps": "1", "limit": "50"},
                )
                got_ranking = [(i["player_id"], i["snaps"], i["pressures"]) for i in ranked["items"]]
                assert got_ranking == await _expected_pressure(stack_db, game_id, team, f), (team, f)

        def ask(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

        # No shrinking: each example posts a game through the stack and waits for it (seconds),
        # so a shrink would outlast the test's time limit; the first failing example is reported.
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )  # fmt: skip
        @given(case=_CASE, data=st.data())
        def check(case: dict[str, Any], data: st.DataObject) -> None:
            n = next(counter)
            game_id = f"e2eprop{unique}{n}"
            game_ids.append(game_id)
            home, away = _code(unique, 10 + 2 * n), _code(unique, 11 + 2 * n)
            events = _plays(game_id, home, away, case["plays"])
            ask(post(events))
            revisions = len(events)
            ask(eventually(lambda: applied(game_id, revisions), timeout=60))
            for _ in range(FILTERS_PER_STATE):
                ask(same_as_sql(game_id, (home, away), _filter(data.draw(_FILTER))))
            changes, touched = [], set()
            for index, kind, drawn in case["changes"]:
                play = index % len(events)
                if play in touched:
                    continue
                touched.add(play)
                old = events[play]
                if kind == "delete":
                    changes.append({"type": "play_deleted", "event_id": f"{old['event_id']}-del", "revision": 2,
                                    "occurred_at": old["occurred_at"], "game": old["game"],
                                    "play_id": old["play"]["play_id"]})  # fmt: skip
                else:
                    new = _event(game_id, home, away, play + 1, len(events), drawn)
                    changes.append({**new, "type": "play_corrected", "revision": 2,
                                    "event_id": f"{old['event_id']}-r2"})  # fmt: skip
            ask(post(changes))
            revisions += len(changes)
            ask(eventually(lambda: applied(game_id, revisions), timeout=60))
            for _ in range(FILTERS_PER_STATE):
                ask(same_as_sql(game_id, (home, away), _filter(data.draw(_FILTER))))

        await asyncio.to_thread(check)
