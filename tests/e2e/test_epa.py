"""EPA through the running stack: a game posted through the gateway is valued by query (stored with
each play) and by analytics (its own copy), and the EPA and tendency answers through the gateway
equal a recomputation over query's `plays` in PostgreSQL, before and after a correction and a
delete travel through real Kafka.

Runs against the stack `make test` started (GATEWAY_URL, DATABASE_URL from the environment).
"""

from __future__ import annotations

import string
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.factories import event_dict
from tests.stack import GATEWAY, eventually, remove_game

SCRIMMAGE = ["pass", "rush", "run", "sack"]
_EPA_SQL = (
    "SELECT count(*) AS plays, count(epa) AS valued_plays, round(sum(epa)::numeric, 4)::float8 AS epa_total, "
    "round(avg(epa)::numeric, 4)::float8 AS epa_per_play, "
    "round(avg((epa > 0)::int)::numeric, 4)::float8 AS success_rate "
    "FROM plays WHERE game_id = $1 AND {side} = $2 AND NOT deleted AND down BETWEEN 1 AND 4 "
    "AND play_type = ANY($3::text[])"
)


_PRESSURE_SQL = (
    "SELECT count(*) AS snaps, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM json_array_elements(stats::json) c "
    "WHERE c->>'player_id' = $3 AND (c->>'stat_id')::int IN (83, 84, 110))) AS pressures "
    "FROM plays WHERE game_id = $1 AND defense = $2 AND NOT deleted AND season_type = 'REG'"
)


@pytest.fixture
async def game_id(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[str]:
    gid = f"e2epa{unique}"
    yield gid
    await remove_game(stack_db, gid)


def _code(unique: str, n: int) -> str:
    """A team code no other test uses: Q and three letters from the test's unique id."""
    digits = int(unique, 16) + n
    return "Q" + "".join(string.ascii_uppercase[(digits // 26**i) % 26] for i in range(3))


def _game(game_id: str, home: str, away: str) -> list[dict[str, Any]]:
    """A first quarter: the home team drives for a touchdown, the away team goes three and out."""
    drive = [  # (down, to go, yardline, type, gained, home score, away score, offense)
        (1, 10, 75, "run", 4, 0, 0, home), (2, 6, 71, "pass", 12, 0, 0, home), (1, 10, 59, "pass", 0, 0, 0, home),
        (2, 10, 59, "run", 9, 0, 0, home), (3, 1, 50, "run", 2, 0, 0, home), (1, 10, 48, "pass", 30, 0, 0, home),
        (1, 10, 18, "sack", -6, 0, 0, home), (2, 16, 24, "pass", 24, 6, 0, home),
        (1, 10, 75, "run", 1, 7, 0, away), (2, 9, 74, "pass", 0, 7, 0, away), (3, 9, 74, "pass", 5, 7, 0, away),
    ]  # fmt: skip
    events = []
    clock = 900
    for n, (down, to_go, yardline, kind, gained, hs, aws, offense) in enumerate(drive, 1):
        defense = away if offense == home else home
        clock -= 35
        e = event_dict(
            game_id=game_id, play_id=str(n), sequence=n, quarter=1, clock=f"{clock // 60}:{clock % 60:02d}",
            down=down, yards_to_go=to_go, yardline_100=yardline, offense=offense, defense=defense, play_type=kind,
            yards_gained=gained, touchdown=hs == 6 and n == 8, home_score=hs, away_score=aws,
            game_status="in_progress", description=f"play {n}",
            participants=[{"player_id": f"e2e-{game_id}-d", "team": defense, "side": "defense"}],
            stats=[{"stat_id": 10 if kind == "run" else 15, "team": offense, "player_id": f"e2e-{game_id}-o",
                    "yards": gained}],
        )  # fmt: skip
        if kind == "pass" and n % 2 == 0:  # the defender hits the quarterback
            e["play"]["stats"].append({"stat_id": 110, "team": defense, "player_id": f"e2e-{game_id}-d"})
        e["game"].update(season=2030, home=home, away=away)
        events.append(e)
    return events


async def test_epa_and_tendencies_equal_the_plays_table_through_kafka(
    stack_keys: dict[str, str], stack_db: asyncpg.Pool, game_id: str, unique: str
) -> None:
    home, away = _code(unique, 0), _code(unique, 1)
    events = _game(game_id, home, away)
    feed = {"X-API-Key": stack_keys["feed"]}
    async with aiohttp.ClientSession(GATEWAY, headers={"X-API-Key": stack_keys["viewer"]}) as http:

        async def post(batch: list[dict[str, Any]]) -> None:
            resp = await http.post("/v1/events", json=batch, headers=feed)
            assert resp.status == 202, await resp.text()

        async def get(path: str, **params: str) -> Any:
            r = await http.get(path, params=params)
            assert r.status == 200, (path, r.status, await r.text())
            return await r.json()

        async def both_have(revisions: int, count: int) -> bool:
            """Query and analytics both committed `count` valued plays of the game, and every event
            posted (the sum of the plays' revisions is `revisions`)."""
            q = await stack_db.fetchrow(
                "SELECT count(*) FILTER (WHERE NOT deleted AND ep_before IS NOT NULL) AS n, sum(revision) AS r "
                "FROM plays WHERE game_id = $1", game_id)  # fmt: skip
            a = await stack_db.fetchrow(
                "SELECT count(*) FILTER (WHERE p.ep_before IS NOT NULL) AS n, sum(c.revision) AS r FROM analytics_play_contrib c "
                "LEFT JOIN analytics_plays p ON p.play_id = c.play_id AND p.season = 2030 WHERE c.play_id LIKE $1",
                f"{game_id}:%")  # fmt: skip
            return bool(q["n"] == a["n"] == count and q["r"] == a["r"] == revisions)

        async def check() -> None:
            for side, column, team in (("offense", "offense", home), ("defense", "defense", home),
                                       ("offense", "offense", away)):  # fmt: skip
                expected = dict(
                    await stack_db.fetchrow(_EPA_SQL.format(side=column), game_id, team, SCRIMMAGE)
                )
                assert (
                    expected["valued_plays"] > 0 and expected["epa_total"] is not None
                )  # the stack has a model
                answer = await get("/v1/analytics/epa", group="team", side=side, team=team, season="2030")
                assert answer["items"] == [{"team": team, **expected}], (side, team)
            tendencies = await get(f"/v1/analytics/teams/{home}/tendencies", season="2030")
            expected = dict(
                await stack_db.fetchrow(_EPA_SQL.format(side="offense"), game_id, home, SCRIMMAGE)
            )
            assert {k: tendencies["overall"][k] for k in expected} == expected
            runs = await stack_db.fetchval(
                "SELECT count(*) FROM plays WHERE game_id = $1 AND offense = $2 AND NOT deleted AND play_type = 'run'",
                game_id, home)  # fmt: skip
            assert tendencies["overall"]["runs"] == runs
            assert sum(s["plays"] for s in tendencies["situations"]) == expected["plays"]
            # The pressure ranking (the in-process index) beside a recomputation from the plays' JSON.
            for team in (home, away):
                ranked = await get(
                    "/v1/analytics/defense/pressure-leaders", team=team, season="2030", min_snaps="1"
                )
                want = await stack_db.fetchrow(_PRESSURE_SQL, game_id, team, f"e2e-{game_id}-d")
                assert [(i["player_id"], i["snaps"], i["pressures"]) for i in ranked["items"]] == [
                    (f"e2e-{game_id}-d", want["snaps"], want["pressures"])
                ], team

        await post(events)
        await eventually(lambda: both_have(len(events), len(events)), timeout=60)
        await check()
        # The 3rd-and-1 conversion was a loss, the sack never happened (a penalty wiped it out), and
        # the first quarterback hit was not one.
        fixed = {**events[4], "type": "play_corrected", "revision": 2, "event_id": f"{events[4]['event_id']}-r2",
                 "play": {**events[4]["play"], "yards_gained": -2, "down": 4}}  # fmt: skip
        hit = next(e for e in events if len(e["play"]["stats"]) > 1)
        no_hit = {**hit, "type": "play_corrected", "revision": 2, "event_id": f"{hit['event_id']}-r2",
                  "play": {**hit["play"], "stats": hit["play"]["stats"][:1]}}  # fmt: skip
        gone = {"type": "play_deleted", "event_id": f"{events[6]['event_id']}-del", "revision": 2,
                "occurred_at": events[6]["occurred_at"], "game": events[6]["game"], "play_id": "7"}  # fmt: skip
        await post([fixed, gone, no_hit])
        await eventually(lambda: both_have(len(events) + 3, len(events) - 1), timeout=60)
        await check()
