"""`snapline replay`: pacing and rebuild as pure functions, the command against an in-process fake
gateway, and one replay through the running stack (gateway, ingest, Kafka, query, live)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.query.plays import SELECT
from services.query.projection import COLUMNS, row, view
from services.query.values import VALUE_COLUMNS
from shared.events import Participant, PlayRecorded, StatCredit, decoder, encoder
from snapline_cli import replay
from snapline_cli.main import main
from tests.factories import KICKOFF, event_dict, game, play, recorded
from tests.stack import GATEWAY, eventually, remove_game

_API_COLUMNS = SELECT.removeprefix("SELECT ").split(" FROM ")[0].split(", ")


def api_play(event: PlayRecorded) -> dict[str, Any]:
    """A play as GET /v1/plays returns it: the query service's own row, JSON columns decoded, and
    not yet valued (the value columns are written after the projection, by services.query.values)."""
    stored = dict(zip(COLUMNS, row(view(event)), strict=True)) | dict.fromkeys(VALUE_COLUMNS)
    out = {name: stored[name] for name in _API_COLUMNS if name not in ("sack", "pressure")}
    for name in ("formation", "personnel", "participants", "stats"):
        out[name] = None if out[name] is None else json.loads(out[name])
    return json.loads(json.dumps(out, default=str))  # type: ignore[no-any-return]


def at(quarter: int, clock: str | None) -> dict[str, Any]:
    return {"quarter": quarter, "clock": clock}


# --- pacing -------------------------------------------------------------------------------------


def test_clock_seconds() -> None:
    assert replay.clock_seconds("15:00") == 900
    assert replay.clock_seconds("0:07") == 7
    assert [replay.clock_seconds(c) for c in (None, "", "1:75", "abc", "15", "1:2")] == [None] * 6


def test_pause_is_the_game_clock_run_off_in_the_quarter() -> None:
    assert replay.pause(None, at(1, "15:00")) == 0
    assert replay.pause(at(1, "15:00"), at(1, "14:38")) == 22
    assert replay.pause(at(2, "2:00"), at(2, "1:59")) == 1


def test_pause_is_clamped() -> None:
    assert replay.pause(at(1, "10:00"), at(1, "10:00")) == 0.5  # no time ran off
    assert replay.pause(at(1, "10:00"), at(1, "10:05")) == 0.5  # the clock went up
    assert replay.pause(at(1, "15:00"), at(1, "9:00")) == 40


def test_pause_when_unknown_or_across_quarters() -> None:
    assert replay.pause(at(1, "0:03"), at(2, "15:00")) == 2
    assert replay.pause(at(1, None), at(1, "14:00")) == 2
    assert replay.pause(at(1, "14:00"), at(1, "bad")) == 2


def test_pause_is_divided_by_speed() -> None:
    assert replay.pause(at(1, "15:00"), at(1, "14:30"), speed=10) == 3
    assert replay.pause(at(1, "0:03"), at(2, "15:00"), speed=4) == 0.5


@pytest.mark.parametrize("speed", ["0", "-1", "nan", "inf", "fast"])
def test_speed_must_be_above_zero(speed: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", "2019090800", "--speed", speed])
    assert exited.value.code == 2
    assert "--speed" in capsys.readouterr().err


def test_replay_id() -> None:
    now = datetime(2024, 9, 8, 17, 5, 9, tzinfo=UTC)
    assert replay.default_replay_id("2019090800", now) == "2019090800-replay-20240908T170509Z"
    assert replay.replay_id_problem("g1", "g1-replay") is None
    assert "differ" in (replay.replay_id_problem("g1", "g1") or "")
    assert replay.replay_id_problem("g1", "a b") and replay.replay_id_problem("g1", "")


# --- rebuild ------------------------------------------------------------------------------------


def _rich_event() -> PlayRecorded:
    p = play(
        play_id="3412", sequence=87, drive=9, quarter=3, clock="7:41", penalty=True, turnover=True,
        formation={"offense": "SHOTGUN"}, personnel={"offense": "11"},
        participants=[Participant(player_id="00-0030000", team="LA", side="defense", name="A.Rusher",
                                  position="DT"), Participant(player_id="00-0031000", team="CAR")],
        stats=[StatCredit(stat_id=83, team="LA", player_id="00-0030000", yards=-8, value=0.5, category="sack"),
               StatCredit(stat_id=20, team="CAR")],
    )  # fmt: skip
    return recorded(game(), p, revision=3)


def test_rebuild_is_the_stored_play_under_the_replay_game() -> None:
    source = _rich_event()
    stored = api_play(source)
    target = replay.replay_game({**stored, "home": "CAR", "away": "LA"}, "2019090800-replay-x")
    event = replay.rebuild(stored, target, KICKOFF)
    assert decoder.decode(encoder.encode(event)) == event
    assert event.play == source.play
    assert event.game == msgspec.structs.replace(source.game, game_id="2019090800-replay-x")
    assert (event.revision, event.source) == (1, "replay")
    assert event.event_id == "replay-2019090800-replay-x-3412-1" != source.event_id
    assert replay.rebuild(stored, target, datetime.now(UTC)).event_id == event.event_id


def test_rebuild_takes_missing_optionals_as_defaults() -> None:
    stored = api_play(recorded(game(), play(clock=None, down=None, yards_to_go=None, formation=None)))
    stored["description"] = None
    event = replay.rebuild(stored, game("r1"), KICKOFF)
    assert decoder.decode(encoder.encode(event)) == event
    assert (event.play.clock, event.play.down, event.play.description) == (None, None, "")


def test_rebuild_refuses_a_play_that_does_not_validate() -> None:
    stored = api_play(recorded(game(), play()))
    stored["quarter"] = 9
    with pytest.raises(msgspec.ValidationError):
        replay.rebuild(stored, game("r1"), KICKOFF)


# --- the command against a fake gateway ----------------------------------------------------------


class FakeGateway:
    """Just enough of the gateway: one stored game, pages of two plays, and an events sink."""

    def __init__(self, plays: list[dict[str, Any]]) -> None:
        self.plays = plays
        self.events: list[dict[str, Any]] = []
        self.answers: list[int] = []  # statuses to give the next posts before accepting
        app = web.Application()
        app.router.add_get("/v1/games/{game_id}", self.get_game)
        app.router.add_get("/v1/plays", self.list_plays)
        app.router.add_post("/v1/events", self.post_event)
        self.server = TestServer(app)

    async def get_game(self, request: web.Request) -> web.Response:
        if request.match_info["game_id"] != "2019090800":
            return web.json_response({"error": {"code": "not_found", "message": "no game"}}, status=404)
        g = game()
        return web.json_response({"game_id": g.game_id, "season": 2019, "season_type": "REG", "week": 1,
                                  "home": "CAR", "away": "LA", "drives": []})  # fmt: skip

    async def list_plays(self, request: web.Request) -> web.Response:
        start = int(request.query.get("cursor", "0"))
        more = start + 2 < len(self.plays)
        return web.json_response(
            {"items": self.plays[start : start + 2], "next_cursor": str(start + 2) if more else None}
        )

    async def post_event(self, request: web.Request) -> web.Response:
        if self.answers:
            status = self.answers.pop(0)
            error = {"error": {"code": "nope", "message": f"said {status}"}}
            return web.json_response(error, status=status, headers={"Retry-After": "0"})
        self.events.append(await request.json())
        return web.json_response({"accepted": 1, "duplicates": 0, "rejected": []}, status=202)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    g = game()
    clocks = ("15:00", "14:40", "14:05")
    plays = [api_play(recorded(g, play(play_id=str(i), sequence=i, clock=c, description=f"play {i}")))
             for i, c in enumerate(clocks, 1)]  # fmt: skip
    gateway = FakeGateway(plays)
    await gateway.server.start_server()
    yield gateway
    await gateway.server.close()


async def snapline(fake: FakeGateway, *args: str) -> int:
    """Run `snapline replay` on the fake gateway in a thread (the command runs its own event loop)."""
    url = str(fake.server.make_url("")).rstrip("/")
    return await asyncio.to_thread(main, ["replay", *args, "--gateway", url, "--api-key", "k"])


async def test_replays_every_page_under_the_new_id(
    fake: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await snapline(fake, "2019090800", "--as", "r1", "--speed", "1000") == 0
    assert [e["game"]["game_id"] for e in fake.events] == ["r1"] * 3
    assert [e["play"]["play_id"] for e in fake.events] == ["1", "2", "3"]
    assert [e["event_id"] for e in fake.events] == ["replay-r1-1-1", "replay-r1-2-1", "replay-r1-3-1"]
    out = capsys.readouterr().out
    assert "r1" in out.splitlines()[0] and "/live/r1" in out
    assert "replayed 3 of 3 plays of 2019090800 as r1" in out


async def test_one_line_per_play_on_a_terminal(
    fake: FakeGateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert await snapline(fake, "2019090800", "--as", "r1", "--speed", "1000") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:5] == ["   1  Q1 15:00  play 1", "   2  Q1 14:40  play 2", "   3  Q1 14:05  play 3"]


async def test_default_replay_id(fake: FakeGateway, capsys: pytest.CaptureFixture[str]) -> None:
    assert await snapline(fake, "2019090800", "--speed", "1000") == 0
    assert fake.events[0]["game"]["game_id"].startswith("2019090800-replay-20")


async def test_unknown_game_is_named(fake: FakeGateway, capsys: pytest.CaptureFixture[str]) -> None:
    assert await snapline(fake, "1999123100", "--speed", "1000") == 1
    assert "1999123100" in capsys.readouterr().err
    assert not fake.events


async def test_retries_a_busy_gateway(fake: FakeGateway) -> None:
    fake.answers = [503, 429]
    assert await snapline(fake, "2019090800", "--as", "r1", "--speed", "1000") == 0
    assert len(fake.events) == 3


async def test_a_refused_play_stops_the_replay(fake: FakeGateway, capsys: pytest.CaptureFixture[str]) -> None:
    fake.answers = [403]
    assert await snapline(fake, "2019090800", "--as", "r1", "--speed", "1000") == 1
    err = capsys.readouterr().err
    assert "play 1 of 3" in err and "2019090800:1" in err and "HTTP 403: said 403" in err
    assert not fake.events


async def test_ctrl_c_stops_with_130(
    fake: FakeGateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = replay.post_event

    async def interrupted_second(*args: Any) -> bool:
        if len(fake.events) == 1:
            raise KeyboardInterrupt
        return await real(*args)

    monkeypatch.setattr(replay, "post_event", interrupted_second)
    assert await snapline(fake, "2019090800", "--as", "r1", "--speed", "1000") == 130
    assert "interrupted; replayed 1 of 3 plays" in capsys.readouterr().err


# --- through the running stack --------------------------------------------------------------------


@pytest.fixture
async def game_ids(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[tuple[str, str]]:
    """A source game id and its replay id; every row made for them is removed afterwards."""
    source, target = f"e2e{unique}", f"e2e{unique}-replay"
    yield source, target
    await remove_game(stack_db, source, player_prefix=f"e2e-{source}")
    await remove_game(stack_db, target)


def _source_event(gid: str, n: int, clock: str) -> dict[str, Any]:
    """One play of the small stored game; punts, so no team totals are touched."""
    defender = f"e2e-{gid}-d{n}"
    event = event_dict(
        game_id=gid, play_id=str(n), sequence=n, clock=clock, play_type="punt", description=f"replay test play {n}",
        participants=[{"player_id": defender, "team": "LA", "side": "defense", "name": "A.Tackler"}],
        stats=[{"stat_id": 79, "team": "LA", "player_id": defender}],
    )  # fmt: skip
    event["game"]["season"] = 2030
    return event


async def _plays(http: aiohttp.ClientSession, key: str, gid: str, count: int) -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]] | None:
        r = await http.get("/v1/plays", params={"game_id": gid, "sort": "oldest"}, headers={"X-API-Key": key})
        items: list[dict[str, Any]] = (await r.json())["items"]
        return items if len(items) == count else None

    return await eventually(listed)  # type: ignore[no-any-return]


async def _live_plays(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while len(got) < count:
            msg = await ws.receive_json()
            if msg.get("type") == "play":
                got.append(msg)
    return got


@pytest.mark.integration
async def test_a_stored_game_replays_live_through_the_stack(
    stack_keys: dict[str, str], game_ids: tuple[str, str]
) -> None:
    source, target = game_ids
    feed = {"X-API-Key": stack_keys["feed"]}
    async with aiohttp.ClientSession(GATEWAY) as http:
        events = [_source_event(source, n, c) for n, c in enumerate(("15:00", "14:40", "14:05"), 1)]
        resp = await http.post("/v1/events", json=events, headers=feed)
        assert resp.status == 202 and (await resp.json())["accepted"] == 3, await resp.text()
        stored = await _plays(http, stack_keys["viewer"], source, 3)

        async with http.ws_connect("/v1/live", headers={"X-API-Key": stack_keys["viewer"]}) as ws:
            await ws.send_json({"op": "subscribe", "game_ids": [target]})
            async with asyncio.timeout(30):
                # The replay's game has not started: an unknown_game error, and it is followed.
                while (await ws.receive_json()).get("type") != "error":
                    pass
            argv = ["replay", source, "--speed", "1000", "--as", target, "--gateway", GATEWAY,
                    "--api-key", stack_keys["feed"]]  # fmt: skip
            assert await asyncio.to_thread(main, argv) == 0
            pushed = await _live_plays(ws, 3)
        assert [(m["game_id"], m["seq"]) for m in pushed] == [(target, 1), (target, 2), (target, 3)]
        assert [m["play_id"] for m in pushed] == [f"{target}:{n}" for n in (1, 2, 3)]

        replayed = await _plays(http, stack_keys["viewer"], target, 3)
        same = ("quarter", "clock", "sequence", "play_type", "description", "participants", "stats")
        assert [{k: p[k] for k in same} for p in replayed] == [{k: p[k] for k in same} for p in stored]
        assert {p["revision"] for p in replayed} == {1}
