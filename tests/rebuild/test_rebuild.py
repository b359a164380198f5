"""`snapline rebuild query|analytics` against real Kafka and PostgreSQL, with the live consumer running.

Events go to the test's topic as ingest publishes them (batches keyed by game); the service's
own consumer code builds its tables incrementally; the rebuild's checksum must equal theirs,
also when events arrive during the rebuild (published just before its swap lock is taken) and
after it; a tampered row changes the checksum, and the next rebuild repairs it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.analytics.consumer import batch_handler as analytics_handler
from services.analytics.rebuild import TARGET as ANALYTICS
from services.analytics.store import AggregateStore
from services.query.consumer import batch_handler as query_handler
from services.query.projection import Projector
from services.query.rebuild import TARGET as QUERY
from shared.config import Settings
from shared.db import Pools, postgres_dependency
from shared.deps import Dependency
from shared.events import PlayEvent, PlayEventBatch, encoder
from shared.kafka import BatchHandler, ConsumerLoop, make_producer
from shared.rebuild import REBUILD_RECORDS, Target, rebuild
from shared.shadow import combined, digest_tables, with_search_path
from tests.factories import corrected, deleted, game, play, recorded

DEFENDERS = ("00-0031000", "00-0031001", "00-0031002")
STAT_IDS = (83, 84, 79, 110, 86)  # sack, half sack, tackle, QB hit, tackle for loss


def _handler(target: Target, db: Dependency[Pools]) -> BatchHandler:
    """The service's own consumer handler, as its app wires it."""
    if target is QUERY:
        return query_handler(Projector(db))
    return analytics_handler(AggregateStore(db))


def _games(first: int, count: int) -> list[list[PlayEvent]]:
    """`count` games of 12 plays each, with a correction and a delete in every game."""
    out = []
    for n in range(first, first + count):
        g = game(f"20190908{n:02d}", week=1 + n % 3)
        events: list[PlayEvent] = [
            recorded(
                g, play(str(i), i, defender=DEFENDERS[i % 3], stat_id=STAT_IDS[i % 5], yards_gained=i % 7 - 2)
            )
            for i in range(1, 13)
        ]
        events.append(
            corrected(g, play("3", 3, defender=DEFENDERS[1], stat_id=79, yards_gained=6), revision=2)
        )
        events.append(deleted(g, "5", revision=2))
        out.append(events)
    return out


async def _publish(producer: AIOKafkaProducer, topic: str, games: Sequence[Sequence[PlayEvent]]) -> None:
    """As ingest does: a game's events in batch records keyed by game id (here two per game)."""
    for events in games:
        game_id = events[0].game.game_id
        for part in (events[:7], events[7:]) if len(events) > 7 else (events,):
            batch = PlayEventBatch(game_id=game_id, events=list(part))
            await producer.send(topic, encoder.encode(batch), key=game_id.encode())
    await producer.flush()


@dataclass
class Live:
    """The service's incremental consumer over one schema."""

    loop: ConsumerLoop
    db: Dependency[Pools]
    task: asyncio.Task[None]

    async def caught_up(self, settings: Settings, seconds: float = 20) -> None:
        """Poll until the group has committed the topic's end offsets."""
        consumer = self.loop.consumer
        assert consumer is not None
        parts = [TopicPartition(settings.kafka.plays_topic, p) for p in range(settings.kafka.play_partitions)]
        async with asyncio.timeout(seconds):
            while True:
                ends = await consumer.end_offsets(parts)
                committed = {tp: await consumer.committed(tp) or 0 for tp in parts}
                if committed == ends:
                    return
                assert not self.task.done(), self.task
                await asyncio.sleep(0.05)


@pytest.fixture
async def run_live(topics: Settings) -> AsyncIterator[Callable[[Settings, Target], Any]]:
    """Start the service's consumer code (group and schema as given); everything stopped afterwards."""
    running: list[Live] = []
    producer = make_producer(topics.kafka, "test-rebuild-dlq")
    await producer.start()

    async def start(settings: Settings, target: Target) -> Live:
        db = postgres_dependency(settings, migrations=target.tables.package)
        db.start()
        await asyncio.wait_for(db.wait(), 30)
        loop = ConsumerLoop(settings, settings.consumer_group, [settings.kafka.plays_topic],
                            _handler(target, db), dead_letter=producer, fetch_wait_ms=50)  # fmt: skip
        await loop.start()
        live = Live(loop, db, asyncio.create_task(loop.run()))
        running.append(live)
        return live

    yield start
    for live in running:
        live.task.cancel()
        await asyncio.gather(live.task, return_exceptions=True)
        await live.loop.stop()
        await live.db.stop()
    await producer.stop()


@pytest.fixture
async def reference_url(database_url: str) -> AsyncIterator[str]:
    """A second schema of the test's own, for an independent incremental build."""
    schema = f"test_ref_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(database_url, schema)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


async def _tamper(pool: asyncpg.Pool, target: Target) -> None:
    if target is QUERY:
        await pool.execute("UPDATE plays SET yards_gained = yards_gained + 1 "
                           "WHERE play_id = (SELECT min(play_id) FROM plays WHERE NOT deleted)")  # fmt: skip
    else:
        await pool.execute("UPDATE stat_totals SET value = value + 1 WHERE (subject_kind, subject_id, stat) = "
                           "(SELECT subject_kind, subject_id, stat FROM stat_totals WHERE value <> 0 "
                           "ORDER BY 1, 2, 3 LIMIT 1)")  # fmt: skip


async def _groups(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        return {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


@pytest.mark.parametrize("target", [QUERY, ANALYTICS], ids=["query", "analytics"])
async def test_rebuild_equals_the_incremental_tables_and_loses_nothing_applied_meanwhile(
    target: Target, topics: Settings, make_settings: Callable[..., Settings], database_url: str,
    reference_url: str, run_live: Callable[[Settings, Target], Any],
) -> None:  # fmt: skip
    name = target.name
    settings = make_settings(name, DATABASE_URL=database_url)
    topic = settings.kafka.plays_topic
    producer = make_producer(settings.kafka, "test-rebuild")
    await producer.start()
    try:
        await _publish(producer, topic, _games(1, 3))
        live = await run_live(settings, target)
        await live.caught_up(settings)
        pool = live.db.get().primary
        incremental = await digest_tables(pool, target.tables)
        assert all(rows for rows, _ in incremental.values()), incremental

        # 1. The command, as an operator runs it, with the service's environment.
        env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
               f"{name.upper()}_CONSUMER_GROUP": settings.consumer_group, "LOG_JSON": "true"}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "snapline_cli.main", "rebuild", name, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
        out = stdout.decode().splitlines()
        assert out[-1] == f"checksum {combined(incremental)}", out
        for table, (rows, digest) in incremental.items():
            assert any(line.split() == [table, str(rows), "rows", digest] for line in out), (table, out)
        assert '"event": "rebuild_done"' in stderr.decode()
        assert await digest_tables(pool, target.tables) == incremental  # the swapped-in tables
        assert not {g for g in await _groups(settings) if "-rebuild-" in g}  # its group is deleted
        schemas = await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%\\_rebuild\\_%'")
        assert not [s for s in schemas if s[0].startswith(f"test_{settings.kafka.topic_prefix[5:]}")]

        # 2. A tampered row changes the checksum; the next rebuild repairs it. Events arrive while
        # it runs (just before its lock), and the live consumer applies them to the old tables.
        await _tamper(pool, target)
        assert combined(await digest_tables(pool, target.tables)) != combined(incremental)

        async def arrive() -> None:
            await _publish(producer, topic, _games(4, 2))
            await _publish(producer, topic, [[corrected(game("2019090801", week=2),
                                                        play("7", 7, stat_id=83, yards_gained=-9), revision=3)]])  # fmt: skip

        applied_before = REBUILD_RECORDS.labels(name, "applied")._value.get()
        report = await rebuild(settings, target, on_caught_up=arrive)
        # 3 + 2 games of two records each and a correction: each replayed once
        assert (report.records, report.skipped) == (11, 0)
        assert REBUILD_RECORDS.labels(name, "applied")._value.get() - applied_before == 11
        await live.caught_up(settings)
        assert await digest_tables(pool, target.tables) == report.tables  # nothing lost, nothing twice

        # 3. An independent incremental build of the same topic (the service's code, a new group)
        # holds exactly what the rebuild swapped in; events after the swap reach both alike.
        reference = await run_live(make_settings(name, DATABASE_URL=reference_url,
                                                 **{f"{name.upper()}_CONSUMER_GROUP": f"{settings.consumer_group}-ref"}),
                                   target)  # fmt: skip
        await reference.caught_up(settings)
        ref_pool = reference.db.get().primary
        assert await digest_tables(ref_pool, target.tables) == report.tables
        assert report.checksum != combined(incremental)  # the events of step 2 are in it

        await _publish(producer, topic, [[corrected(game("2019090804", week=2),
                                                    play("2", 2, stat_id=84, yards_gained=11), revision=2)]])  # fmt: skip
        await live.caught_up(settings)
        await reference.caught_up(settings)
        after = await digest_tables(pool, target.tables)
        assert after != report.tables
        assert after == await digest_tables(ref_pool, target.tables)
    finally:
        await producer.stop()
