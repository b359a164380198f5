"""A real play through all five running services: gateway -> ingest -> Kafka -> query,
analytics and live -> back through the gateway, over HTTP and a WebSocket.

Runs against the stack `make test` started (GATEWAY_URL, DATABASE_URL from the environment).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.factories import event_dict
from tests.stack import GATEWAY, eventually, remove_game


@pytest.fixture
async def game_id(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[str]:
    gid = f"e2e{unique}"
    yield gid
    await remove_game(stack_db, gid, player_prefix=f"e2e-{gid}")


async def _next_message(ws: aiohttp.ClientWebSocketResponse, wanted: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            msg = await ws.receive_json()
            if msg.get("type") == wanted:
                return msg  # type: ignore[no-any-return]


def _event(gid: str, defender: str, stat_id: int, revision: int = 1) -> dict[str, Any]:
    e = event_dict(game_id=gid, play_id="51", participants=[{"player_id": defender, "team": "LA", "side": "defense"}],
                   stats=[{"stat_id": stat_id, "team": "LA", "player_id": defender, "yards": -8}])  # fmt: skip
    e["game"]["season"] = 2030
    if revision > 1:
        e.update(type="play_corrected", revision=revision, event_id=f"{e['event_id']}-r{revision}")
    return e


async def test_a_play_flows_through_every_service(stack_keys: dict[str, str], game_id: str) -> None:
    defender = f"e2e-{game_id}-rusher"
    feed = {"X-API-Key": stack_keys["feed"]}
    async with aiohttp.ClientSession(GATEWAY) as http:
        async with http.ws_connect("/v1/live", headers={"X-API-Key": stack_keys["viewer"]}) as ws:
            await ws.send_json({"op": "subscribe", "game_ids": [game_id]})
            # The game has not started: live names it unknown and follows it all the same.
            unknown = await _next_message(ws, "error")
            assert (unknown["error"]["code"], unknown["game_ids"]) == ("unknown_game", [game_id])

            resp = await http.post("/v1/events", json=_event(game_id, defender, 83), headers=feed)
            assert resp.status == 202, await resp.text()
            assert (await resp.json())["accepted"] == 1

            pushed = await _next_message(ws, "play")
            assert (pushed["game_id"], pushed["seq"], pushed["play_id"]) == (game_id, 1, f"{game_id}:51")

            async def listed() -> list[Any]:
                r = await http.get("/v1/plays", params={"game_id": game_id}, headers=feed)
                return (await r.json())["items"]  # type: ignore[no-any-return]

            [play] = await eventually(listed)
            assert (play["season"], play["down"], play["yardline_100"], play["sack"]) == (2030, 3, 75, True)
            assert play["participants"][0]["player_id"] == defender

            async def sacks(expected: float) -> bool:
                r = await http.get(f"/v1/analytics/players/{defender}/stats", params={"season": "2030"},
                                   headers=feed)  # fmt: skip
                return r.status == 200 and (await r.json())["defense"]["sacks"] == expected

            await eventually(lambda: sacks(1))

            # A correction: the sack was a quarterback hit. Every service follows it.
            resp = await http.post(
                "/v1/events", json=_event(game_id, defender, 110, revision=2), headers=feed
            )
            assert (await resp.json())["accepted"] == 1
            corrected = await _next_message(ws, "correction")
            assert (corrected["seq"], corrected["revision"]) == (2, 2)
            await eventually(lambda: sacks(0))
            [play] = await eventually(listed)
            assert (play["revision"], play["sack"], play["pressure"]) == (2, False, True)

            # The feed withdraws the play: gone from the list and from every total.
            withdraw = {"type": "play_deleted", "event_id": f"del-{game_id}", "occurred_at": "2030-09-08T18:00:00Z",
                        "game": _event(game_id, defender, 83)["game"], "play_id": "51", "revision": 3}  # fmt: skip
            resp = await http.post("/v1/events", json=withdraw, headers=feed)
            assert (await resp.json())["accepted"] == 1
            gone = await _next_message(ws, "correction")
            assert (gone["seq"], gone["deleted"]) == (3, True)

            async def emptied() -> bool:
                return await listed() == []

            await eventually(emptied)

            async def no_pressure() -> bool:
                r = await http.get(
                    f"/v1/analytics/players/{defender}/stats", params={"season": "2030"}, headers=feed
                )
                d = (await r.json())["defense"]
                return r.status == 200 and (d["qb_hits"], d["pressures"], d["snaps"]) == (0, 0, 0)

            await eventually(no_pressure)


async def test_the_gateway_refuses_what_it_should(stack_keys: dict[str, str], game_id: str) -> None:
    async with aiohttp.ClientSession(GATEWAY) as http:
        anonymous = await http.get("/v1/plays")
        assert anonymous.status == 401
        assert (await anonymous.json())["error"]["code"]
        viewer_push = await http.post(
            "/v1/events", json=_event(game_id, "x", 83), headers={"X-API-Key": stack_keys["viewer"]}
        )
        assert viewer_push.status == 403
        bad = await http.post(
            "/v1/events",
            data=b"{",
            headers={"X-API-Key": stack_keys["feed"], "Content-Type": "application/json"},
        )
        assert bad.status == 400
        assert (await bad.json())["error"]["code"] == "malformed_json"
        unknown = await http.get(
            "/v1/plays", params={"downs": "3"}, headers={"X-API-Key": stack_keys["viewer"]}
        )
        assert unknown.status == 400
        assert (await unknown.json())["error"]["details"] == [
            {"field": "downs", "message": "unknown parameter"}
        ]


async def test_the_read_contract_through_the_gateway(
    stack_keys: dict[str, str], stack_db: asyncpg.Pool, game_id: str
) -> None:
    # Jacksonville's own play spelled JAC in a JAX game, as five 2016 GameCenter games have it.
    player = f"e2e-{game_id}-runner"
    event = event_dict(
        game_id=game_id, play_id="7", sequence=1, offense="JAC", defense="GB", down=1, yards_to_go=10,
        touchdown=True, home_score=7, away_score=0, game_status="in_progress",
        participants=[{"player_id": player, "team": "JAC", "side": "offense", "name": f"Zoë Q{game_id}",
                       "position": "RB"}],
        stats=[{"stat_id": 10, "team": "JAC", "player_id": player, "yards": 12}],
    )  # fmt: skip
    event["game"].update(season=2030, home="JAX", away="GB")
    headers = {"X-API-Key": stack_keys["viewer"]}
    async with aiohttp.ClientSession(GATEWAY, headers=headers) as http:
        resp = await http.post("/v1/events", json=event, headers={"X-API-Key": stack_keys["feed"]})
        assert resp.status == 202, await resp.text()

        async def get(path: str, **params: str) -> Any:
            r = await http.get(path, params=params)
            assert r.status == 200, (path, r.status, await r.text())
            return await r.json()

        async def stored() -> list[Any]:
            return (await get("/v1/plays", game_id=game_id))["items"]  # type: ignore[no-any-return]

        [play] = await eventually(stored)
        assert (play["offense"], play["participants"][0]["team"]) == ("JAX", "JAX")  # one code
        assert len((await get("/v1/plays", game_id=game_id, team="jac"))["items"]) == 1  # any code finds it

        async def found() -> list[Any]:
            return (await get("/v1/players", q=f"zoe q{game_id}"))["items"]  # type: ignore[no-any-return]

        [listed] = await eventually(found)
        assert (listed["player_id"], listed["name"], listed["teams"]) == (player, f"Zoë Q{game_id}", ["JAX"])
        one = await get(f"/v1/players/{player}")
        assert one["seasons"] == [{"season": 2030, "team": "JAX", "position": "RB"}]
        missing = await http.get("/v1/players/e2e-nobody")
        assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"

        page = await get("/v1/games", season="2030", team="JAC", limit="500")
        assert game_id in [g["game_id"] for g in page["items"]] and page["next_cursor"] is None
        detail = await get(f"/v1/games/{game_id}")
        assert detail["score"] == {"home": 7, "away": 0, "by_quarter": [{"quarter": 1, "home": 7, "away": 0}]}
        assert detail["status"] == "in_progress"
        teams = {t["team"]: t for t in (await get("/v1/teams"))["items"]}
        assert teams["JAX"]["name"] == "Jacksonville Jaguars" and "JAC" not in teams

        # Never stale: the touchdown is corrected to a field goal; the first read after the
        # projection committed it (seen in the database) has the new score, though the old
        # answer was cached (read twice).
        assert (await get(f"/v1/games/{game_id}"))["score"]["home"] == 7
        fixed = {**event, "type": "play_corrected", "revision": 2, "event_id": f"{event['event_id']}-r2",
                 "play": {**event["play"], "touchdown": False, "home_score": 3}}  # fmt: skip
        resp = await http.post("/v1/events", json=fixed, headers={"X-API-Key": stack_keys["feed"]})
        assert resp.status == 202, await resp.text()

        async def committed() -> bool:
            revision = await stack_db.fetchval(
                "SELECT revision FROM plays WHERE play_id = $1", f"{game_id}:7"
            )
            return bool(revision == 2)

        await eventually(committed, timeout=30)
        assert (await get(f"/v1/games/{game_id}"))["score"]["home"] == 3
