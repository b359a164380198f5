"""Sequencing against real Kafka and Redis: order, duplicates, corrections, redelivery, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from services.live.sequencer import Keys
from shared.config import Settings
from tests.live.conftest import StartLive
from tests.live.support import corrected, deleted, nothing_more, plays, produce, recorded, subscribe


async def test_plays_arrive_in_order_with_seq(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live")
    ack = await subscribe(ws, game_id)
    assert ack["seq"] == {game_id: 0}

    await produce(producer, live_settings, *(recorded(game_id, n) for n in (1, 2, 3)))

    got = await plays(ws, 3)
    assert [m["seq"] for m in got] == [1, 2, 3]
    first = got[0]
    assert first == {
        "type": "play",
        "game_id": game_id,
        "seq": 1,
        "play_id": f"{game_id}:1",
        "revision": 1,
        "sequence": 1,
        "quarter": 1,
        "clock": "14:01",
        "down": 1,
        "yards_to_go": 10,
        "yardline_100": 75,
        "offense": "KC",
        "defense": "BUF",
        "play_type": "pass",
        "yards_gained": 1,
        "touchdown": False,
        "description": "play 1",
        "drive": None,
        "home": "KC",
        "away": "BUF",
        "home_score": None,  # the feed sent no score or status: no `score` or `game_state` either
        "away_score": None,
        "game_status": None,
    }
    await nothing_more(ws, types=("score", "game_state"))
    await ws.close()


async def test_duplicate_event_gets_no_seq(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    live_settings: Settings,
    redis: aioredis.Redis,
    unique: str,
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)

    await produce(producer, live_settings, recorded(game_id, 1), recorded(game_id, 1), recorded(game_id, 2))

    got = await plays(ws, 2)
    assert [(m["seq"], m["play_id"]) for m in got] == [(1, f"{game_id}:1"), (2, f"{game_id}:2")]
    await nothing_more(ws)
    assert await redis.get(Keys(live_settings.kafka.topic_prefix).seq(game_id)) == b"2"
    await ws.close()


async def test_corrections_supersede_and_stale_revisions_are_ignored(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)

    await produce(
        producer,
        live_settings,
        recorded(game_id, 1),
        corrected(game_id, 1, 2, yards_gained=7, description="play 1 (7 yards)"),
        recorded(game_id, 1),  # a late redelivery of revision 1
        deleted(game_id, 1, 3),
        corrected(game_id, 1, 2),  # older than the deletion
    )

    got = await plays(ws, 3)
    assert [(m["type"], m["seq"], m["revision"]) for m in got] == [
        ("play", 1, 1),
        ("correction", 2, 2),
        ("correction", 3, 3),
    ]
    assert got[1]["yards_gained"] == 7
    assert got[2] == {
        "type": "correction",
        "game_id": game_id,
        "seq": 3,
        "play_id": f"{game_id}:1",
        "revision": 3,
        "deleted": True,
    }
    await nothing_more(ws)
    await ws.close()


def _duplicates() -> float:
    return REGISTRY.get_sample_value("snapline_live_events_total", {"outcome": "duplicate"}) or 0.0


async def test_redelivery_after_restart_numbers_nothing_twice(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    live_settings: Settings,
    make_settings: Callable[..., Settings],
    unique: str,
) -> None:
    game_id = f"G{unique}"
    first = await start_live()
    ws = await first.ws_connect("/v1/live")
    await subscribe(ws, game_id)
    await produce(producer, live_settings, *(recorded(game_id, n) for n in (1, 2, 3)))
    assert [m["seq"] for m in await plays(ws, 3)] == [1, 2, 3]
    await ws.close()
    await first.close()

    # A new group reads the topic from the start: every event is delivered again.
    before = _duplicates()
    again = await start_live(make_settings("live", LIVE_CONSUMER_GROUP=f"test-{unique}-live-again"))
    ws = await again.ws_connect("/v1/live")
    ack = await subscribe(ws, game_id)
    assert ack["seq"] == {game_id: 3}
    await produce(producer, live_settings, recorded(game_id, 4))

    got = await plays(ws, 1)
    assert (got[0]["seq"], got[0]["play_id"]) == (4, f"{game_id}:4")
    assert _duplicates() - before == 3
    await nothing_more(ws)
    await ws.close()


async def test_undecodable_record_is_dead_lettered(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)

    await producer.send_and_wait(live_settings.kafka.plays_topic, b"{not json", key=game_id.encode())
    await produce(producer, live_settings, recorded(game_id, 1))

    got = await plays(ws, 1)
    assert got[0]["seq"] == 1
    assert await _dead_letters(live_settings) == [b"{not json"]
    await ws.close()


async def _dead_letters(settings: Settings) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        settings.kafka.dead_letter_topic,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await asyncio.wait_for(consumer.getmany(timeout_ms=10000), 15)
        return [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()


async def test_one_call_over_many_events_numbers_them_gap_free(
    live_settings: Settings, redis: aioredis.Redis, unique: str
) -> None:
    # More events of one game than one script call takes, with repeats and corrections inside.
    from services.live.sequencer import SCRIPT_EVENTS, Sequencer
    from shared.deps import Dependency

    async def connect() -> aioredis.Redis:
        return redis

    async def close(_: aioredis.Redis) -> None:
        return None

    dep: Dependency[aioredis.Redis] = Dependency("redis", "test", connect, close, close)
    dep.start()
    await dep.wait()
    sequencer = Sequencer(dep, live_settings.kafka.topic_prefix, ttl_seconds=600)
    game_id = f"G{unique}"
    n = SCRIPT_EVENTS + 300
    events = [recorded(game_id, i) for i in range(1, n + 1)]
    events += [
        recorded(game_id, 5),
        corrected(game_id, 5, 2),
        corrected(game_id, 5, 2),
        deleted(game_id, 7, 2),
    ]
    seqs = await sequencer.sequence(events)
    assert seqs[:n] == list(range(1, n + 1))
    assert seqs[n:] == [0, n + 1, 0, n + 2]
    assert await sequencer.current([game_id]) == {game_id: n + 2}
    history = await sequencer.history(game_id, after_seq=n)
    assert [seq for seq, _ in history] == [n + 1, n + 2]
    assert await sequencer.sequence(events[:3]) == [0, 0, 0]  # a redelivery numbers nothing


async def test_history_is_stored_and_counted_elsewhere_but_not_broadcast(
    start_live: StartLive,
    producer: AIOKafkaProducer,
    live_settings: Settings,
    redis: aioredis.Redis,
    unique: str,
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)
    skipped = REGISTRY.get_sample_value("snapline_live_events_total", {"outcome": "history"}) or 0.0
    await produce(producer, live_settings, recorded(game_id, 1), recorded(game_id, 2), history=True)
    await produce(producer, live_settings, recorded(game_id, 3))  # a live event after the history
    got = await plays(ws, 1)
    assert [(m["seq"], m["play_id"]) for m in got] == [(1, f"{game_id}:3")]
    await nothing_more(ws)
    assert await redis.get(Keys(live_settings.kafka.topic_prefix).seq(game_id)) == b"1"
    assert REGISTRY.get_sample_value("snapline_live_events_total", {"outcome": "history"}) == skipped + 2
    await ws.close()
