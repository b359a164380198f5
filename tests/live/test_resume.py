"""Resume always answers: the missed messages in order, or an explicit `reload` with its reason;
subscribing to an unknown game is an error; the per-game history is bounded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import ClientWebSocketResponse
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.live.client import Client
from services.live.sequencer import Keys
from shared.config import Settings
from tests.live.conftest import StartLive
from tests.live.support import nothing_more, plays, produce, receive, recorded, subscribe
from tests.stack import eventually


def _reloads(reason: str) -> float:
    return REGISTRY.get_sample_value("snapline_live_reloads_total", {"reason": reason}) or 0.0


async def _started(redis: aioredis.Redis, settings: Settings, game_id: str, seq: int) -> None:
    """Wait until live has sequenced the game up to `seq`."""
    key = Keys(settings.kafka.topic_prefix).seq(game_id)
    await eventually(lambda: _at_least(redis, key, seq))


async def _at_least(redis: aioredis.Redis, key: str, seq: int) -> bool:
    return int(await redis.get(key) or 0) >= seq


async def _resume(ws: ClientWebSocketResponse, game_id: str, after_seq: int) -> dict[str, Any]:
    await ws.send_json({"op": "resume", "game_id": game_id, "after_seq": after_seq})
    return await receive(ws, ("resumed", "reload"))


async def test_a_resume_ahead_of_the_stream_is_told_to_reload_then_follows(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    live_settings: Settings,
    redis: aioredis.Redis,
    unique: str,
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    await produce(producer, live_settings, *(recorded(game_id, n) for n in (1, 2)))
    await _started(redis, live_settings, game_id, 2)
    ws = await client.ws_connect("/v1/live")
    before = _reloads("ahead")
    reply = await _resume(ws, game_id, 7)  # a client that kept a seq from another stream
    assert reply == {"type": "reload", "game_id": game_id, "seq": 2, "reason": "ahead"}
    assert _reloads("ahead") == before + 1
    await produce(producer, live_settings, recorded(game_id, 3))
    assert [m["seq"] for m in await plays(ws, 1)] == [3]  # live again, after the reload's seq
    await ws.close()


async def test_an_unknown_game_is_an_error_on_subscribe_and_a_reload_on_resume(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    live_settings: Settings,
    redis: aioredis.Redis,
    unique: str,
) -> None:
    client = await start_live()
    live, unknown = f"L{unique}", f"U{unique}"
    await produce(producer, live_settings, recorded(live, 1))
    await _started(redis, live_settings, live, 1)
    ws = await client.ws_connect("/v1/live")
    await ws.send_json({"op": "subscribe", "game_ids": [unknown, live]})
    error = await receive(ws, ("error",))
    assert error["error"]["code"] == "unknown_game" and error["game_ids"] == [unknown]
    assert unknown in error["error"]["message"]
    ack = await receive(ws, ("subscribed",))
    assert (ack["game_ids"], ack["seq"]) == ([live], {live: 1})
    other = await client.ws_connect("/v1/live")
    assert await _resume(other, f"V{unique}", 0) == {
        "type": "reload", "game_id": f"V{unique}", "seq": 0, "reason": "unknown_game"
    }  # fmt: skip
    # Both stay followed: a game that was unknown because it had not started comes from seq 1.
    await produce(producer, live_settings, recorded(unknown, 1), recorded(f"V{unique}", 1))
    assert [(m["game_id"], m["seq"]) for m in await plays(ws, 1)] == [(unknown, 1)]
    assert [(m["game_id"], m["seq"]) for m in await plays(other, 1)] == [(f"V{unique}", 1)]
    await ws.close()
    await other.close()


async def test_a_game_stored_as_history_only_is_not_live_and_says_so(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    live_settings: Settings,
    redis: aioredis.Redis,
    unique: str,
) -> None:
    client = await start_live()
    game_id = f"H{unique}"
    await produce(producer, live_settings, recorded(game_id, 1), recorded(game_id, 2), history=True)
    known = Keys(live_settings.kafka.topic_prefix).known(game_id)
    await eventually(lambda: redis.exists(known))
    ws = await client.ws_connect("/v1/live")
    ack = await subscribe(ws, game_id)
    assert (ack["game_ids"], ack["unknown"], ack["seq"]) == ([game_id], [], {game_id: 0})
    assert await receive(ws, ("reload",)) == {
        "type": "reload",
        "game_id": game_id,
        "seq": 0,
        "reason": "not_live",
    }
    other = await client.ws_connect("/v1/live")
    assert (await _resume(other, game_id, 0))["reason"] == "not_live"
    await nothing_more(ws)
    await ws.close()
    await other.close()


async def test_history_is_bounded_and_a_resume_from_before_it_reloads(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    make_settings: Callable[..., Settings],
    live_settings: Settings,
    redis: aioredis.Redis,
    unique: str,
) -> None:
    client = await start_live(make_settings("live", LIVE_HISTORY_LENGTH="10"))
    game_id = f"T{unique}"
    n = 400
    await produce(producer, live_settings, *(recorded(game_id, i) for i in range(1, n + 1)))
    await _started(redis, live_settings, game_id, n)
    keys = Keys(live_settings.kafka.topic_prefix)
    length = await redis.xlen(keys.stream(game_id))
    assert length < n  # trimmed (approximately: Redis drops whole nodes of about 100 entries)
    oldest = int((await redis.xrange(keys.stream(game_id), count=1))[0][0].split(b"-")[0])
    ws = await client.ws_connect("/v1/live")
    before = _reloads("trimmed")
    assert await _resume(ws, game_id, 1) == {
        "type": "reload",
        "game_id": game_id,
        "seq": n,
        "reason": "trimmed",
    }
    assert _reloads("trimmed") == before + 1
    other = await client.ws_connect("/v1/live")
    reply = await _resume(other, game_id, oldest - 1)  # everything after it is still held
    assert (reply["type"], reply["seq"]) == ("resumed", n)
    assert [m["seq"] for m in await plays(other, n - oldest + 1)] == list(range(oldest, n + 1))
    await ws.close()
    await other.close()


class _Socket:
    """What Client needs of a WebSocket: the texts it was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    async def send_str(self, text: str) -> None:
        self.sent.append(text)


async def test_a_client_behind_a_trimmed_gap_is_told_to_reload() -> None:
    async def history(game_id: str, after: int, up_to: int | None) -> list[tuple[int, str]]:
        held = {n: f'{{"seq": {n}}}' for n in range(8, 11)}  # 1..7 were trimmed away
        return [(n, t) for n, t in held.items() if after < n <= (up_to or 10)]

    socket = _Socket()
    client = Client(socket, history, queue_size=10, peer="test")  # type: ignore[arg-type]
    client._last["G"] = 2
    await client._catch_up("G", 9)
    assert socket.sent == ['{"type":"reload","game_id":"G","seq":9,"reason":"trimmed"}']
    assert client._last["G"] == 9
    socket.sent.clear()
    await client._catch_up("G", None)  # and from there on, no gap: the rest in order
    assert socket.sent == ['{"seq": 10}']
