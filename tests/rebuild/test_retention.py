"""The plays topic keeps every record forever: what a rebuild from offset 0 needs."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.config import Settings
from shared.kafka import ensure_topics, topic_configs
from tests.stack import eventually


async def _configs(settings: Settings) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        return await topic_configs(admin, [settings.kafka.plays_topic, settings.kafka.dead_letter_topic])
    finally:
        await admin.close()


async def test_the_plays_topic_is_kept_forever_and_a_drifted_setting_is_put_back(topics: Settings) -> None:
    forever = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    for name, config in (await _configs(topics)).items():
        assert {k: config[k] for k in forever} == forever, name
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.kafka.bootstrap)
    await admin.start()
    try:  # an operator (or an older version) set a week's retention
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topics.kafka.plays_topic,
                                                  configs={"retention.ms": "604800000"})])  # fmt: skip
    finally:
        await admin.close()

    async def drifted() -> bool:  # the broker applies an altered config a moment after it answers
        return (await _configs(topics))[topics.kafka.plays_topic]["retention.ms"] == "604800000"

    await eventually(drifted, timeout=30)
    assert await ensure_topics(topics.kafka) == []  # nothing created, the setting put back
    plays = (await _configs(topics))[topics.kafka.plays_topic]
    assert {k: plays[k] for k in forever} == forever
    assert plays["min.insync.replicas"] == "1"
