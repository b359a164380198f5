"""The /v1/live WebSocket and the game page against real Kafka and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiokafka import AIOKafkaProducer

from shared.config import Settings
from tests.live.conftest import StartLive
from tests.live.support import nothing_more, plays, produce, receive, recorded, subscribe


async def test_resume_replays_after_seq_then_continues_live(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    watcher = await client.ws_connect("/v1/live")
    await subscribe(watcher, game_id)
    await produce(producer, live_settings, *(recorded(game_id, n) for n in (1, 2, 3)))
    await plays(watcher, 3)

    ws = await client.ws_connect("/v1/live")
    await ws.send_json({"op": "resume", "game_id": game_id, "after_seq": 1})
    resumed = await receive(ws, ("resumed",))
    assert (resumed["after_seq"], resumed["seq"]) == (1, 3)
    assert [m["seq"] for m in await plays(ws, 2)] == [2, 3]

    await produce(producer, live_settings, recorded(game_id, 4))
    assert [m["seq"] for m in await plays(ws, 1)] == [4]
    await nothing_more(ws)
    await watcher.close()
    await ws.close()


async def test_two_instances_deliver_every_message_once_with_the_same_seq(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    one, two = await start_live(), await start_live()
    game_ids = [f"G{unique}-{i}" for i in range(4)]  # keys spread over the partitions
    clients = [await one.ws_connect("/v1/live"), await two.ws_connect("/v1/live")]
    for ws in clients:
        await subscribe(ws, *game_ids)

    for n in (1, 2, 3):
        await produce(producer, live_settings, *(recorded(g, n) for g in game_ids))

    seen: list[list[tuple[str, int, str]]] = []
    for ws in clients:
        got = await plays(ws, 3 * len(game_ids))
        seen.append(sorted((m["game_id"], m["seq"], m["play_id"]) for m in got))
        await nothing_more(ws)
    expected = sorted((g, n, f"{g}:{n}") for g in game_ids for n in (1, 2, 3))
    assert seen == [expected, expected]
    for ws in clients:
        await ws.close()


async def test_bad_ops_get_an_error_and_keep_the_connection(start_live: StartLive, unique: str) -> None:
    client = await start_live()
    ws = await client.ws_connect("/v1/live")
    cases: list[tuple[Any, str, str]] = [
        ("{nope", "bad_json", "JSON"),
        ([1, 2], "bad_request", "op"),
        ({"op": "dance"}, "unknown_op", "dance"),
        ({"op": "subscribe"}, "bad_request", "game_ids"),
        ({"op": "resume", "game_id": "G", "after_seq": -1}, "bad_request", "after_seq"),
        ({"op": "subscribe", "game_ids": [f"G{i}" for i in range(65)]}, "bad_request", "game_ids"),
    ]
    for payload, code, mentions in cases:
        if isinstance(payload, str):
            await ws.send_str(payload)
        else:
            await ws.send_json(payload)
        err = (await receive(ws, ("error",)))["error"]
        assert err["code"] == code
        assert mentions in err["message"]
    ack = await subscribe(ws, f"G{unique}")
    assert ack["unknown"] == [f"G{unique}"]  # not started: an error names it, and it is followed
    await ws.send_json({"op": "unsubscribe", "game_ids": [f"G{unique}"]})
    assert (await receive(ws, ("unsubscribed",)))["game_ids"] == [f"G{unique}"]
    await ws.close()


async def test_heartbeats_are_sent(start_live: StartLive) -> None:
    # Every client gets one per interval; the clients' heartbeats are spread over it, not a burst.
    client = await start_live(heartbeat_seconds=0.6)
    sockets = [await client.ws_connect("/v1/live") for _ in range(20)]
    beats = [[(await receive(ws, ("heartbeat",), seconds=5))["ts"] for _ in range(2)] for ws in sockets]
    assert all(isinstance(ts, int) for pair in beats for ts in pair)
    assert all(300 <= second - first <= 1500 for first, second in beats), beats
    assert len({first for first, _ in beats}) > 1  # not all at the same instant
    for ws in sockets:
        await ws.close()


async def test_game_page_is_served(start_live: StartLive) -> None:
    client = await start_live()
    resp = await client.get("/live/2024_01_KC_BUF?access_token=abc")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "/v1/live" in page and "access_token" in page and "resume" in page
    assert "<script src" not in page and "<link" not in page  # self-contained


async def test_shutdown_closes_sockets_with_going_away(start_live: StartLive) -> None:
    client = await start_live()
    async with aiohttp.ClientSession() as session, session.ws_connect(client.make_url("/v1/live")) as ws:
        closing = asyncio.create_task(ws.receive())
        await client.server.close()
        msg = await asyncio.wait_for(closing, 10)
        assert msg.type == WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (1001, "going away")


async def test_an_over_large_message_is_answered_then_closed_with_1009(start_live: StartLive) -> None:
    client = await start_live()
    ws = await client.ws_connect("/v1/live")
    await ws.send_str('{"op": "subscribe", "game_ids": ["' + "x" * (100 * 1024) + '"]}')
    err = (await receive(ws, ("error",)))["error"]
    assert err["code"] == "too_large" and "65536" in err["message"]
    closing = await ws.receive()
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 1009


async def test_messages_of_every_frame_length_arrive_whole(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    # Written to the socket as one pre-built frame per message: 7-bit, 16-bit and 64-bit lengths.
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live", max_msg_size=0)
    await subscribe(ws, game_id)
    sizes = (1, 200, 70_000)
    await produce(producer, live_settings, *(recorded(game_id, n, description="d" * size)
                                             for n, size in enumerate(sizes, 1)))  # fmt: skip
    got = await plays(ws, 3)
    assert [len(m["description"]) for m in got] == list(sizes)
    await ws.close()


async def test_keepalive_pings_and_drops_a_silent_viewer(start_live: StartLive) -> None:
    # The hub pings with every other heartbeat; a viewer that answers stays, one that sends nothing
    # (no pong) is dropped after two heartbeat intervals and a half, and counted.
    from services.live.metrics import DEAD_DISCONNECTS

    client = await start_live(heartbeat_seconds=0.4, ping_every_heartbeats=2)
    dropped_before = DEAD_DISCONNECTS._value.get()
    answering = await client.ws_connect("/v1/live")  # aiohttp answers pings (autoping) while it reads
    silent = await client.ws_connect("/v1/live", autoping=False)  # sees pings, answers none
    beats: list[dict[str, Any]] = []

    async def read_answering() -> None:
        async for msg in answering:
            if msg.type == WSMsgType.TEXT:
                beats.append(msg.json())

    reader = asyncio.create_task(read_answering())
    pings = 0
    async with asyncio.timeout(10):
        while True:
            msg = await silent.receive()
            if msg.type == WSMsgType.PING:
                pings += 1
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                break
    assert pings >= 1  # it was pinged before it was dropped
    assert DEAD_DISCONNECTS._value.get() > dropped_before
    # The answering viewer outlived it (two more silence periods) and still gets heartbeats.
    seen = len(beats)
    async with asyncio.timeout(10):
        while len(beats) < seen + 5:
            await asyncio.sleep(0.05)
    assert not answering.closed and not reader.done()
    await answering.close()
    await reader


async def test_live_answers_a_viewer_ping(start_live: StartLive) -> None:
    client = await start_live()
    ws = await client.ws_connect("/v1/live", autoping=False)
    await ws.ping(b"are you there")
    async with asyncio.timeout(5):
        while (msg := await ws.receive()).type != WSMsgType.PONG:
            pass
    assert msg.data == b"are you there"
    await ws.close()
