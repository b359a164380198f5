"""POST /v1/events on the real ingest app, real Kafka and real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from services.ingest.app import create_app
from services.ingest.keys import POSTGRES, PRODUCER, PUBLISHER, REDIS
from shared.config import Settings
from shared.events import events_of
from tests.factories import event_dict

NDJSON = {"Content-Type": "application/x-ndjson"}
NONE_REJECTED = {"rejected": [], "rejected_count": 0, "rejected_truncated": False}


async def _client(settings: Settings, wait: bool = True) -> TestClient:  # type: ignore[type-arg]
    app = create_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    if wait:
        await asyncio.wait_for(app[PRODUCER].wait(), 30)
        await asyncio.wait_for(app[REDIS].wait(), 30)
    return client


@pytest.fixture
async def ingest(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[Any]:
    settings = make_settings("ingest", MAX_EVENTS_BODY_BYTES="200000", DATABASE_URL=database_url)
    client = await _client(settings)
    client.settings = settings  # type: ignore[attr-defined]
    yield client
    redis = client.app[REDIS].get()
    keys = [k async for k in redis.scan_iter(match=f"{settings.kafka.topic_prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await client.close()


async def _published(settings: Settings, expected: int) -> list[Any]:
    """The records on this test's plays topic, once at least `expected` events are there."""
    consumer = AIOKafkaConsumer(settings.kafka.plays_topic, bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(20):
            while len(events_of(r.value for r in records)) < expected:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
        extra = await consumer.getmany(timeout_ms=300)
        records.extend(r for batch in extra.values() for r in batch)
    finally:
        await consumer.stop()
    return records


async def test_events_are_published_keyed_by_game_once_each(ingest: Any) -> None:
    body = b"\n".join(msgspec.json.encode(event_dict(play_id=str(i))) for i in range(5))
    resp = await ingest.post("/v1/events", data=body, headers=NDJSON)
    assert resp.status == 202
    assert await resp.json() == {"accepted": 5, "duplicates": 0, "superseded": 0, **NONE_REJECTED}
    again = await ingest.post("/v1/events", data=body, headers=NDJSON)
    assert (await again.json())["duplicates"] == 5
    records = await _published(ingest.settings, 5)
    assert len(records) == 1  # one game's events of one request travel as one batch record
    assert {r.key for r in records} == {b"2019090800"}
    assert [e.play.play_id for e in events_of(r.value for r in records)] == ["0", "1", "2", "3", "4"]
    assert all(dict(r.headers).get("traceparent") for r in records)


async def test_an_older_revision_after_a_newer_one_is_ignored(ingest: Any) -> None:
    newer = {**event_dict(), "type": "play_corrected", "revision": 3, "event_id": "c3"}
    older = {**event_dict(), "type": "play_corrected", "revision": 2, "event_id": "c2"}
    assert (await (await ingest.post("/v1/events", json=newer)).json())["accepted"] == 1
    resp = await ingest.post("/v1/events", json=older)
    assert await resp.json() == {"accepted": 0, "duplicates": 1, "superseded": 1, **NONE_REJECTED}


async def test_mixed_batches_keep_the_good_and_name_the_bad(ingest: Any) -> None:
    bad = event_dict(play_id="9", yards_to_go="ten")
    resp = await ingest.post("/v1/events", json=[event_dict(play_id="8"), bad])
    body = await resp.json()
    assert resp.status == 202
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "errors": [{"field": "play.yards_to_go",
                                                         "message": "Expected `int | null`, got `str`"}]}]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (
            msgspec.json.encode([{"type": "play_recorded"}]),
            {"Content-Type": "application/json"},
            422,
            "invalid_events",
        ),
        (b'{"type": ', {"Content-Type": "application/json"}, 400, "malformed_json"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"[" + b" " * 300000 + b"]", {"Content-Type": "application/json"}, 413, "payload_too_large"),
    ],
)
async def test_bad_requests_get_the_json_error_format(ingest: Any, data: bytes, headers: dict[str, str],
                                                      status: int, code: str) -> None:  # fmt: skip
    resp = await ingest.post("/v1/events", data=data, headers=headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert error["message"]
    if status == 422:
        assert error["details"][0]["index"] == 0


async def test_no_broker_means_503_with_retry_after_never_202(
    topics: Settings, make_settings: Callable[..., Settings]
) -> None:
    client = await _client(make_settings("ingest", KAFKA_BOOTSTRAP="127.0.0.1:1"), wait=False)
    try:
        resp = await client.post("/v1/events", json=event_dict())
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) > 0
        assert (await resp.json())["error"]["code"] == "unavailable"
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["kafka"] != "ok"
    finally:
        await client.close()


async def test_a_claim_never_confirmed_is_published_again(ingest: Any) -> None:
    # An instance claimed this play in Redis and died before Kafka acknowledged it: the
    # unconfirmed mark makes the next sender publish it instead of calling it a duplicate.
    settings = ingest.settings
    redis = ingest.app[REDIS].get()
    key = f"{settings.kafka.topic_prefix}:ingest:game:2019090800"
    await redis.hset(key, mapping={"p:77": -1, "e:ev-2019090800-77-1": 1})  # negated: unconfirmed
    first = await ingest.post("/v1/events", json=event_dict(play_id="77"))
    assert (await first.json())["accepted"] == 1
    assert await redis.hget(key, "p:77") == b"1"  # Kafka acknowledged: the claim is final
    second = await ingest.post("/v1/events", json=event_dict(play_id="77"))
    assert (await second.json())["duplicates"] == 1
    records = await _published(settings, 1)
    assert [e.play.play_id for e in events_of(r.value for r in records)] == ["77"]


async def test_one_request_dedupes_within_itself_and_across_games(ingest: Any) -> None:
    items = [
        event_dict(play_id="1"),
        event_dict(play_id="1"),  # the same event again
        {**event_dict(play_id="1"), "type": "play_corrected", "revision": 2, "event_id": "fix-1"},
        {**event_dict(play_id="2"), "event_id": "fix-1"},  # an event id already taken
        event_dict(game_id="2019090900", play_id="1"),  # another game's play 1 is another play
    ]
    resp = await ingest.post("/v1/events", json=items)
    assert await resp.json() == {"accepted": 3, "duplicates": 2, "superseded": 0, **NONE_REJECTED}
    again = await ingest.post("/v1/events", json=items)
    assert (await again.json())["accepted"] == 0


async def test_claims_kafka_did_not_acknowledge_are_released(ingest: Any, monkeypatch: Any) -> None:
    publisher = ingest.app[PUBLISHER]
    real_send = publisher._send

    async def kafka_fails(producer: Any, events: list[Any], live: bool = True) -> list[bool]:
        return [True] * len(events)

    monkeypatch.setattr(publisher, "_send", kafka_fails)
    body = [event_dict(play_id="5"), event_dict(play_id="6")]
    resp = await ingest.post("/v1/events", json=body)
    assert resp.status == 503
    monkeypatch.setattr(publisher, "_send", real_send)
    retry = await ingest.post("/v1/events", json=body)
    assert await retry.json() == {"accepted": 2, "duplicates": 0, "superseded": 0, **NONE_REJECTED}
    records = await _published(ingest.settings, 2)
    assert sorted(e.play.play_id for e in events_of(r.value for r in records)) == ["5", "6"]


async def test_live_false_publishes_history_and_a_bad_value_is_named(ingest: Any) -> None:
    resp = await ingest.post("/v1/events?live=false", json=[event_dict(play_id="1")])
    assert resp.status == 202
    [record] = await _published(ingest.settings, 1)
    assert ("snapline-delivery", b"history") in record.headers
    bad = await ingest.post("/v1/events?live=maybe", json=[event_dict(play_id="2")])
    assert bad.status == 400
    error = (await bad.json())["error"]
    assert error["details"] == [{"field": "live", "message": "'maybe' is not a boolean (true or false)"}]
    unknown = await ingest.post("/v1/events?lve=false", json=[event_dict(play_id="2")])
    assert (await unknown.json())["error"]["details"][0] == {"field": "lve", "message": "unknown parameter"}


def test_batches_keep_order_per_game_and_stay_small() -> None:
    from services.ingest.publisher import batch_by_game
    from shared.events import decoder

    events = [decoder.decode(msgspec.json.encode(event_dict(game_id=g, play_id=str(i))))
              for i, g in enumerate(["A", "B", "A", "A", "B"])]  # fmt: skip
    assert batch_by_game(events) == [("A", [0, 2, 3]), ("B", [1, 4])]
    assert batch_by_game(events, limit=2) == [("A", [0, 2]), ("B", [1, 4]), ("A", [3])]


async def test_a_body_over_the_events_limit_is_413_before_it_is_read_whole(ingest: Any) -> None:
    big = b"[" + b" " * 300000 + b"]"
    resp = await ingest.post("/v1/events", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    error = (await resp.json())["error"]
    assert error["code"] == "payload_too_large" and "200000" in error["message"]

    async def chunks() -> Any:  # no Content-Length: counted while reading
        for _ in range(10):
            yield b" " * 50000

    chunked = await ingest.post("/v1/events", data=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status == 413


async def test_rejections_are_summarised_with_an_exact_count(ingest: Any) -> None:
    bad = [{**event_dict(play_id=str(i)), "type": "x" * 1000} for i in range(100)]
    resp = await ingest.post("/v1/events", json=[event_dict(play_id="good"), *bad])
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 1
    assert (body["rejected_count"], body["rejected_truncated"], len(body["rejected"])) == (100, True, 20)
    assert [r["index"] for r in body["rejected"]] == list(range(1, 21))
    assert all(len(e["message"]) <= 200 for r in body["rejected"] for e in r["errors"])
    nothing = await ingest.post("/v1/events", json=[{"type": "play_recorded", "x": "y" * 50}] * 2000)
    assert nothing.status == 422 and len(await nothing.read()) < 10_000
    error = (await nothing.json())["error"]
    assert len(error["details"]) == 20 and "2000" in error["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": "a\u0000b"}, "play.description"),
        ({"sequence": 2**63}, "play.sequence"),
        ({"yards_gained": -(2**40)}, "play.yards_gained"),
        ({"formation": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": {"n": {"o": 1}}}}}}}}}}}}}}}},
         "play.formation.a.b.c.d.e.f.g.h.i.j.k.l.m.n"),
    ],
)  # fmt: skip
async def test_what_no_store_can_keep_is_rejected_by_field(
    ingest: Any, change: dict[str, Any], field: str
) -> None:
    resp = await ingest.post(
        "/v1/events", json=[event_dict(play_id="ok"), event_dict(play_id="bad", **change)]
    )
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 1
    [rejected] = body["rejected"]
    assert rejected["index"] == 1 and rejected["errors"][0]["field"] == field, rejected


async def test_deep_nesting_and_encodings_are_4xx_never_500(ingest: Any) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    resp = await ingest.post("/v1/events", data=deep, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "malformed_json"
    deep_formation = msgspec.json.encode(event_dict(play_id="deep", formation={"x": "DEEP"}))
    lines = deep_formation.replace(b'"DEEP"', deep) + b"\n" + msgspec.json.encode(event_dict())
    mixed = await ingest.post("/v1/events", data=lines, headers=NDJSON)
    body = await mixed.json()
    assert (
        mixed.status == 202
        and body["rejected_count"] == 1
        and "deeper" in body["rejected"][0]["errors"][0]["message"]
    )
    gz = await ingest.post("/v1/events", data=b"\x1f\x8b", headers={"Content-Type": "application/json",
                                                                   "Content-Encoding": "gzip"})  # fmt: skip
    assert gz.status == 415 and (await gz.json())["error"]["code"] == "unsupported_encoding"


async def test_dedupe_marks_expire_a_window_after_the_games_last_event(ingest: Any) -> None:
    settings = ingest.settings
    redis = ingest.app[REDIS].get()
    key = f"{settings.kafka.topic_prefix}:ingest:game:2019090800"
    body = msgspec.json.encode(event_dict(play_id="5"))
    assert (await (await ingest.post("/v1/events", data=body, headers=NDJSON)).json())["accepted"] == 1
    window_ms = settings.ingest_dedupe_window * 1000
    first_ttl = await redis.pttl(key)
    assert 0 < first_ttl <= window_ms  # bounded, not forever
    # Inside the window a retry is a duplicate, and each event of the game restarts the window.
    await redis.pexpire(key, 60_000)
    again = await ingest.post("/v1/events", data=body, headers=NDJSON)
    assert (await again.json())["duplicates"] == 1
    assert await redis.pttl(key) > 60_000


async def test_a_retry_after_the_window_is_published_again_and_still_counted_once(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str
) -> None:
    from services.query.projection import Projector
    from shared.db import postgres_dependency

    settings = make_settings("ingest", DATABASE_URL=database_url, INGEST_DEDUPE_WINDOW="1")
    client = await _client(settings)
    redis = client.app[REDIS].get()
    key = f"{settings.kafka.topic_prefix}:ingest:game:2019090800"
    db = postgres_dependency(make_settings("query", DATABASE_URL=database_url), migrations="services.query")
    db.start()
    try:
        body = msgspec.json.encode(event_dict(play_id="8"))
        assert (await (await client.post("/v1/events", data=body, headers=NDJSON)).json())["accepted"] == 1
        async with asyncio.timeout(10):  # Redis drops the game's marks once the window has passed
            while await redis.exists(key):
                await asyncio.sleep(0.05)
        late = await client.post("/v1/events", data=body, headers=NDJSON)
        assert (await late.json())["accepted"] == 1  # no mark left: published again
        records = await _published(settings, 2)
        assert len(events_of(r.value for r in records)) == 2
        await asyncio.wait_for(db.wait(), 30)
        await asyncio.wait_for(client.app[POSTGRES].wait(), 30)  # both migrated before anything stops
        projector = Projector(db)
        for record in records:  # each record as the query consumer applies it, in its own batch
            await projector.apply_records([record.value])
        count = await db.get().primary.fetchval(
            "SELECT count(*) FROM plays WHERE game_id = '2019090800' AND feed_play_id = '8'"
        )
        assert count == 1
    finally:
        await db.stop()
        keys = [k async for k in redis.scan_iter(match=f"{settings.kafka.topic_prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await client.close()


def test_a_window_under_a_second_is_refused() -> None:
    from services.ingest.publisher import Publisher
    from shared.config import SettingsError

    with pytest.raises(SettingsError, match="INGEST_DEDUPE_WINDOW"):
        Publisher(Settings(service="ingest", ingest_dedupe_window=0), None, None)  # type: ignore[arg-type]


async def test_marks_written_before_they_expired_get_the_window_at_start_up(ingest: Any) -> None:
    settings = ingest.settings
    redis = ingest.app[REDIS].get()
    old = f"{settings.kafka.topic_prefix}:ingest:game:2015091000"
    kept = f"{settings.kafka.topic_prefix}:ingest:game:2015091001"
    await redis.hset(old, mapping={"p:1": 1, "e:ev-1": 1})  # as written before marks expired
    await redis.hset(kept, mapping={"p:1": 1})
    await redis.pexpire(kept, 30_000)
    assert await ingest.app[PUBLISHER].bound_old_marks() == 1
    assert 0 < await redis.pttl(old) <= settings.ingest_dedupe_window * 1000
    assert 0 < await redis.pttl(kept) <= 30_000  # an expiry already set is left as it was
