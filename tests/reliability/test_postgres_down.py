"""PostgreSQL stopped: the projection consumers (query, analytics) hold their fetch, commit nothing,
and resume from exactly where they were once it is back: no record skipped, none applied twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.analytics.app import create_app as analytics_app
from services.ingest.app import create_app as ingest_app
from services.ingest.keys import PRODUCER, REDIS
from services.query.app import create_app as query_app
from services.query.keys import CONSUMER
from shared.config import Settings
from tests.infra import PrivatePostgres
from tests.reliability.support import ids_of, metric, readiness, sack, until


async def _offsets(settings: Settings, groups: list[str]) -> dict[str, int]:
    """The plays topic's end offset ('end') and each group's committed offset, summed over partitions."""
    topic = settings.kafka.plays_topic
    parts = [TopicPartition(topic, p) for p in range(settings.kafka.play_partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    await admin.start()
    try:
        out = {"end": sum((await consumer.end_offsets(parts)).values())}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group, partitions=parts)
            out[group] = sum(max(c.offset, 0) for c in committed.values())
    finally:
        await admin.close()
        await consumer.stop()
    return out


async def _plays(query: Any, game_id: str) -> int:
    resp = await query.get("/v1/plays", params={"game_id": game_id, "limit": "100"})
    return len((await resp.json())["items"]) if resp.status == 200 else -1


async def _sacks(analytics: Any, defender: str) -> float:
    resp = await analytics.get(f"/v1/analytics/players/{defender}/stats", params={"season": "2019"})
    return float((await resp.json())["defense"]["sacks"]) if resp.status == 200 else -1.0


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_with_postgres_down_consumers_commit_nothing_and_resume_where_they_were(
    private_settings: Callable[..., Settings], serve: Any, postgres: PrivatePostgres, unique: str, how: str
) -> None:
    settings = {name: private_settings(name) for name in ("ingest", "query", "analytics")}
    ingest = await serve(ingest_app(settings["ingest"]))
    services = {"query": await serve(query_app(settings["query"])),
                "analytics": await serve(analytics_app(settings["analytics"]))}  # fmt: skip
    groups = {name: settings[name].consumer_group for name in services}
    for client in (ingest, *services.values()):
        for key in (PRODUCER, REDIS, CONSUMER):
            if key in client.app:
                await until(client.app[key].connected.is_set, f"{client.app[key]!r} connected")
    game_id, defender = ids_of(unique)

    async def post(*plays: int) -> None:
        resp = await ingest.post("/v1/events", json=[sack(game_id, str(n), defender) for n in plays])
        assert resp.status == 202 and (await resp.json())["accepted"] == len(plays), await resp.text()

    async def caught_up() -> bool:
        offsets = await _offsets(settings["ingest"], list(groups.values()))
        return all(offsets[g] == offsets["end"] for g in groups.values())

    await post(1, 2)
    await until(caught_up, "both groups committed the first records")
    assert (
        await _plays(services["query"], game_id) == 2 and await _sacks(services["analytics"], defender) == 2
    )
    committed = await _offsets(settings["ingest"], list(groups.values()))

    def count(name: str, metric_name: str, **labels: str) -> Any:
        return metric(services[name], metric_name, group=groups[name], **labels)

    ok = {name: await count(name, "snapline_consumer_messages_total", outcome="ok") for name in services}
    waits = {name: await count(name, "snapline_consumer_dependency_waits_total", dependency="postgres")
             for name in services}  # fmt: skip

    await postgres.stop() if how == "stop" else await postgres.kill()
    await post(3, 4, 5)  # ingest needs no PostgreSQL for events: one record, on Kafka
    for name in services:
        # What an SRE sees: the consumer waiting on PostgreSQL, its lag holding the record...
        await until(lambda n=name: _above(count(n, "snapline_consumer_dependency_waits_total",
                                                 dependency="postgres"), waits[n]),
                    f"{name} waiting for PostgreSQL")  # fmt: skip
        assert await count(name, "snapline_consumer_lag") >= 1
        status, checks = await readiness(services[name])  # ...and readiness failing on it
        assert status == 503 and checks["postgres"] != "ok", checks
        assert (
            await metric(services[name], "snapline_dependency_up", service=name, dependency="postgres") == 0
        )
    # ...and its committed offset not moving.
    during = await _offsets(settings["ingest"], list(groups.values()))
    assert during["end"] == committed["end"] + 1
    assert {g: during[g] for g in groups.values()} == {g: committed[g] for g in groups.values()}

    await postgres.start()
    await until(caught_up, "both groups committed up to the end once PostgreSQL was back", timeout=60)
    assert await _plays(services["query"], game_id) == 5
    assert await _sacks(services["analytics"], defender) == 5
    for name in services:
        # The held record was applied once: one more ok, none dead-lettered, nothing rewound.
        assert await count(name, "snapline_consumer_messages_total", outcome="ok") == ok[name] + 1
        assert await count(name, "snapline_consumer_messages_total", outcome="dead_letter") == 0
        assert await count(name, "snapline_consumer_lag") == 0
        status, checks = await readiness(services[name])
        assert status == 200, checks


async def _above(value: Any, floor: float) -> bool:
    return bool(await value > floor)
