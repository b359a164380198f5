"""What tests and benchmarks make in Kafka goes away with them: topics and consumer groups."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.config import Settings
from shared.kafka import delete_groups, delete_topics, ensure_topics


async def _groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def test_delete_topics_removes_the_prefix_consumer_groups(
    make_settings: Callable[..., Settings], unique: str
) -> None:
    settings = make_settings("query")
    kafka = settings.kafka
    await ensure_topics(kafka)
    other = f"other-{unique}-query"  # a group of another prefix stays
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        await producer.send_and_wait(kafka.plays_topic, b"x", key=b"k")
        await producer.stop()
        for group in (settings.consumer_group, other):
            consumer = AIOKafkaConsumer(kafka.plays_topic, bootstrap_servers=kafka.bootstrap, group_id=group,
                                        auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
            await consumer.start()
            await consumer.getmany(timeout_ms=10_000)
            await consumer.commit()
            await consumer.stop()
        assert {settings.consumer_group, other} <= await _groups(kafka.bootstrap)
    finally:
        await delete_topics(kafka)
    groups = await _groups(kafka.bootstrap)
    assert settings.consumer_group not in groups and other in groups
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await delete_groups(admin, [other])
    finally:
        await admin.close()
    assert other not in await _groups(kafka.bootstrap)
