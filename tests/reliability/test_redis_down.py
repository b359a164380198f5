"""Redis stopped: ingest answers 503 + Retry-After and publishes nothing (a 202 it could not dedupe
would be a second play on a retry); the read APIs still answer from PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.analytics.app import create_app as analytics_app
from services.ingest.app import create_app as ingest_app
from services.ingest.keys import POSTGRES, PRODUCER, REDIS
from services.query.app import create_app as query_app
from shared.config import Settings
from shared.events import events_of
from tests.infra import PrivateRedis
from tests.ingest.conftest import topic_records
from tests.reliability.support import ids_of, metric, readiness, sack, until


async def _sacks(analytics: Any, defender: str) -> Any:
    resp = await analytics.get(f"/v1/analytics/players/{defender}/stats", params={"season": "2019"})
    return (await resp.json())["defense"]["sacks"] if resp.status == 200 else None


async def test_with_redis_down_ingest_answers_503_and_queries_answer_from_postgres(
    private_settings: Callable[..., Settings], serve: Any, redis: PrivateRedis, unique: str
) -> None:
    settings = private_settings("ingest")
    ingest = await serve(ingest_app(settings))
    query = await serve(query_app(private_settings("query")))
    analytics = await serve(analytics_app(private_settings("analytics")))
    for key in (POSTGRES, PRODUCER, REDIS):
        await until(ingest.app[key].connected.is_set, f"ingest connected to {key}")
    game_id, defender = ids_of(unique)
    before, during = sack(game_id, "1", defender), sack(game_id, "2", defender)
    resp = await ingest.post("/v1/events", json=before)
    assert resp.status == 202, await resp.text()
    await until(lambda: _sacks(analytics, defender), "analytics counting the first sack")
    await until(lambda: _plays(query, game_id), "query storing the first play")
    refused = await metric(ingest, "snapline_ingest_refused_total", dependency="redis")
    cache_errors = await metric(
        analytics, "snapline_answer_cache_requests_total", cache="analytics", outcome="error"
    )

    await redis.kill()
    resp = await ingest.post("/v1/events", json=during)
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "unavailable" and "redis" in body["error"]["message"]
    assert int(resp.headers["Retry-After"]) >= 1
    # What an SRE sees: publishes refused for Redis, readiness failing on it.
    assert await metric(ingest, "snapline_ingest_refused_total", dependency="redis") == refused + 1
    status, checks = await readiness(ingest)
    assert status == 503 and checks["redis"] != "ok", checks
    # Nothing of the refused request reached Kafka.
    ids = [e.event_id for e in events_of(r.value for r in await topic_records(settings))]
    assert ids == [before["event_id"]]

    # Reads still answer, from PostgreSQL: plays, and analytics past its answer cache (counted).
    assert await _plays(query, game_id) == [1]
    assert await _sacks(analytics, defender) == 1  # kept in the process: no Redis needed
    fresh = await analytics.get(
        f"/v1/analytics/players/{defender}/stats", params={"season": "2019", "week_min": "1"}
    )
    assert fresh.status == 200 and (await fresh.json())["defense"]["sacks"] == 1  # a new question: computed
    assert (
        await metric(analytics, "snapline_answer_cache_requests_total", cache="analytics", outcome="error")
        > cache_errors
    )

    await redis.start()

    async def retried() -> Any:
        resp = await ingest.post("/v1/events", json=during)
        return await resp.json() if resp.status == 202 else None

    accepted = await until(retried, "ingest accepting events again after Redis came back", every=0.5)
    assert accepted["accepted"] == 1
    resp = await ingest.post("/v1/events", json=during)  # deduped again
    assert (await resp.json())["duplicates"] == 1
    await until(lambda: _sacks_are(analytics, defender, 2), "analytics counting the second sack")
    status, checks = await readiness(ingest)
    assert status == 200, checks


async def _plays(query: Any, game_id: str) -> list[int]:
    resp = await query.get("/v1/plays", params={"game_id": game_id})
    assert resp.status == 200, await resp.text()
    return [p["sequence"] for p in (await resp.json())["items"]]


async def _sacks_are(analytics: Any, defender: str, expected: int) -> bool:
    return await _sacks(analytics, defender) == expected
