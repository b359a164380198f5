"""`score` and `game_state` messages from the score and status the events carry, and the league
channel "*", against real Kafka and Redis."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from aiohttp import ClientWebSocketResponse
from aiokafka import AIOKafkaProducer

from services.live.sequencer import Keys
from shared.config import Settings
from tests.live.conftest import StartLive
from tests.live.support import corrected, nothing_more, produce, receive, recorded, subscribe

SEQUENCED = ("play", "correction", "score", "game_state")


async def _messages(ws: ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    return [await receive(ws, SEQUENCED) for _ in range(count)]


def _drive(game_id: str) -> list[Any]:
    """A kickoff, a touchdown, its extra point, then the end of the half and of the game."""
    return [
        recorded(game_id, 1, down=None, offense="BUF", defense="KC", home_score=0, away_score=0,
                 game_status="in_progress"),
        recorded(game_id, 2, down=1, home_score=0, away_score=0, game_status="in_progress"),
        recorded(game_id, 3, down=2, yards_to_go=3, touchdown=True, home_score=6, away_score=0,
                 game_status="in_progress"),
        recorded(game_id, 4, down=None, home_score=7, away_score=0, game_status="halftime", quarter=2),
        recorded(game_id, 5, down=None, home_score=7, away_score=0, game_status="final", quarter=4),
    ]  # fmt: skip


async def test_score_and_state_follow_their_play_when_they_change(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, redis: aioredis.Redis,
    unique: str,
) -> None:  # fmt: skip
    client = await start_live()
    game_id = f"S{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)
    await produce(producer, live_settings, *_drive(game_id))
    got = await _messages(ws, 13)
    assert [m["seq"] for m in got] == list(range(1, 14))  # one gap-free stream
    assert [(m["type"], m.get("play_id", "").rsplit(":", 1)[-1]) for m in got] == [
        ("play", "1"), ("score", "1"), ("game_state", "1"),  # the first score and state
        ("play", "2"), ("game_state", "2"),  # possession and down changed, the score did not
        ("play", "3"), ("score", "3"), ("game_state", "3"),
        ("play", "4"), ("score", "4"), ("game_state", "4"),  # the extra point; halftime
        ("play", "5"), ("game_state", "5"),  # final: the score is unchanged
    ]  # fmt: skip
    await nothing_more(ws, types=SEQUENCED)
    by_type = [m for m in got if m["type"] == "score"]
    assert [(m["home_score"], m["away_score"]) for m in by_type] == [(0, 0), (6, 0), (7, 0)]
    assert by_type[1] == {"type": "score", "game_id": game_id, "seq": 7, "home": "KC", "away": "BUF",
                          "home_score": 6, "away_score": 0, "quarter": 1, "clock": "14:03",
                          "play_id": f"{game_id}:3"}  # fmt: skip
    states = [m for m in got if m["type"] == "game_state"]
    assert [(m["status"], m["possession"], m["down"]) for m in states] == [
        ("in_progress", "BUF", None), ("in_progress", "KC", 1), ("in_progress", "KC", 2),
        ("halftime", "KC", None), ("final", "KC", None),
    ]  # fmt: skip
    assert set(states[-1]) == {"type", "game_id", "seq", "status", "quarter", "clock", "possession", "down",
                               "yards_to_go", "yardline_100", "drive", "home", "away", "home_score",
                               "away_score", "play_id"}  # fmt: skip
    # A final game's history is kept for the shorter ttl; its known marker for the long one.
    keys = Keys(live_settings.kafka.topic_prefix)
    assert 0 < await redis.ttl(keys.stream(game_id)) <= live_settings.live_final_history_seconds
    assert await redis.get(keys.known(game_id)) == b"final"
    await ws.close()


async def test_a_late_correction_of_an_older_play_does_not_move_the_score_back(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    game_id = f"S{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)
    await produce(producer, live_settings, *_drive(game_id)[:3])
    assert len(await _messages(ws, 8)) == 8
    # Play 2 restated (a longer gain) after play 3 scored: its correction, and no 0-0 score.
    await produce(producer, live_settings, corrected(game_id, 2, 2, down=1, yards_gained=9, home_score=0,
                                                     away_score=0, game_status="in_progress"))  # fmt: skip
    [correction] = await _messages(ws, 1)
    assert (correction["type"], correction["seq"], correction["yards_gained"]) == ("correction", 9, 9)
    await nothing_more(ws, types=("score", "game_state"))
    # A correction of the latest play does move them: the touchdown was a field goal.
    await produce(producer, live_settings, corrected(game_id, 3, 2, down=2, yards_to_go=3, home_score=3,
                                                     away_score=0, game_status="in_progress"))  # fmt: skip
    got = await _messages(ws, 2)
    assert [(m["type"], m["seq"]) for m in got] == [("correction", 10), ("score", 11)]
    assert (got[1]["home_score"], got[1]["away_score"]) == (3, 0)
    await ws.close()


async def test_the_league_channel_carries_every_games_score_and_state_only(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    first, second = f"A{unique}", f"B{unique}"
    fan = await client.ws_connect("/v1/live")
    own = await client.ws_connect("/v1/live")  # follows the first game and the league
    await subscribe(own, first)
    await produce(producer, live_settings, *_drive(first)[:2])
    assert [m["seq"] for m in await _messages(own, 5)] == [1, 2, 3, 4, 5]  # sequenced
    await own.send_json({"op": "subscribe", "game_ids": ["*"]})
    await fan.send_json({"op": "subscribe", "game_ids": ["*"]})
    # Joining: the latest score and state of every game live has sequenced (the first game's).
    joined = await receive(fan, ("subscribed",))
    assert joined["game_ids"] == ["*"] and first in joined["games"]
    snapshot = [await receive(fan, ("score", "game_state")) for _ in range(2)]
    assert {(m["type"], m["game_id"], m["seq"]) for m in snapshot} == {
        ("score", first, 2),
        ("game_state", first, 5),
    }
    await receive(own, ("subscribed",))
    await produce(producer, live_settings, *_drive(second)[:3], _drive(first)[2])
    # The fan sees the scores and states of both games, never a play.
    seen = [await receive(fan, ("play", "correction", "score", "game_state")) for _ in range(7)]
    assert {m["type"] for m in seen} == {"score", "game_state"}
    assert [(m["game_id"], m["type"]) for m in seen if m["game_id"] == first] == [
        (first, "score"), (first, "game_state")]  # fmt: skip
    assert [m["seq"] for m in seen if m["game_id"] == second] == [2, 3, 5, 7, 8]
    # Following the first game itself, a viewer gets its messages once, from the game's stream.
    mine = [await receive(own, SEQUENCED) for _ in range(8)]
    assert [(m["game_id"], m["type"], m["seq"]) for m in mine if m["game_id"] == first] == [
        (first, "play", 6), (first, "score", 7), (first, "game_state", 8)]  # fmt: skip
    await nothing_more(own, types=SEQUENCED)
    await fan.close()
    await own.close()


async def test_the_league_channel_has_no_history_to_resume(start_live: StartLive, unique: str) -> None:
    client = await start_live()
    ws = await client.ws_connect("/v1/live")
    await ws.send_json({"op": "resume", "game_id": "*", "after_seq": 0})
    reply = await receive(ws, ("error",))
    assert reply["error"]["code"] == "bad_request" and "subscribe" in reply["error"]["message"]
    await ws.close()
