"""SIGTERM: a consumer service drains, commits its offsets and exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.config import Settings
from shared.events import encoder
from shared.kafka import make_producer
from tests.factories import game, play, recorded


async def _count(conn: asyncpg.Connection) -> int:
    try:
        return int(await conn.fetchval("SELECT count(*) FROM plays"))
    except asyncpg.UndefinedTableError:  # the service has not migrated its schema yet
        return 0


async def test_sigterm_commits_offsets_and_exits_zero(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str, unique: str
) -> None:
    settings = make_settings("query", DATABASE_URL=database_url)
    producer = make_producer(settings.kafka, "test")
    await producer.start()
    g = game(f"sd{unique}")
    for i in range(1, 21):
        await producer.send_and_wait(settings.kafka.plays_topic, encoder.encode(recorded(g, play(str(i), i))),
                                     key=g.game_id.encode())  # fmt: skip
    await producer.stop()
    env = dict(os.environ, DATABASE_URL=database_url, KAFKA_TOPIC_PREFIX=settings.kafka.topic_prefix,
               QUERY_CONSUMER_GROUP=settings.consumer_group, QUERY_PORT="0", LOG_JSON="true")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.query", env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    try:
        conn = await asyncpg.connect(database_url)
        try:
            async with asyncio.timeout(60):
                while await _count(conn) < 20:
                    await asyncio.sleep(0.1)
        finally:
            await conn.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()[-2000:]
        # EVENT_LOOP defaults to uvloop, and the service says which loop it runs on.
        starting = next(line for line in stderr.decode().splitlines() if '"starting"' in line)
        assert '"event_loop": "uvloop"' in starting, starting
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.consumer_group)
        parts = [TopicPartition(settings.kafka.plays_topic, p) for p in range(settings.kafka.play_partitions)]
        end = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
        await admin.close()
    assert sum(end.values()) == 20
    assert {tp: committed[tp].offset for tp in parts if end[tp]} == {
        tp: off for tp, off in end.items() if off
    }
