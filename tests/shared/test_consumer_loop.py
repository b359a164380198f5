"""The consumer loop against real Kafka: a failed dead-letter send means redelivery, never a skip."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from shared.config import Settings
from shared.http import _supervise
from shared.kafka import ConsumerLoop, Record, make_producer

POISON = b"13"


class FailingFirst:
    """A real producer whose first `failures` sends fail, as a broker that times out would."""

    def __init__(self, producer: AIOKafkaProducer, failures: int) -> None:
        self.producer = producer
        self.failures = failures
        self.attempts = 0

    async def send_and_wait(self, topic: str, value: bytes | None, **kwargs: object) -> object:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise KafkaTimeoutError("dead-letter send timed out (test)")
        return await self.producer.send_and_wait(topic, value, **kwargs)


async def _read_all(settings: Settings, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [r.value for part in batches.values() for r in part if r.value is not None]
    finally:
        await consumer.stop()


async def test_failed_dead_letter_sends_rewind_and_every_record_is_applied_once(topics: Settings) -> None:
    settings = topics
    topic = settings.kafka.plays_topic
    producer = make_producer(settings.kafka, "test-loop")
    await producer.start()
    try:
        for i in range(30):  # one key: one partition, one fetch
            await producer.send(topic, str(i).encode(), key=b"G")
        await producer.flush()
        applied: list[bytes] = []
        violations: list[str] = []
        loop_ref: list[ConsumerLoop] = []
        partitions: list[TopicPartition] = []

        async def handler(records: Sequence[Record]) -> None:
            if any(r.value == POISON for r in records):
                raise ValueError("poison record")
            # Nothing committed may be past a record not applied yet.
            consumer = loop_ref[0].consumer
            assert consumer is not None
            tp = TopicPartition(records[0].topic, records[0].partition)
            partitions.append(tp)
            committed = await consumer.committed(tp)
            if committed is not None and committed > records[0].offset:
                violations.append(f"committed {committed} while applying {records[0].offset}")
            applied.extend(r.value for r in records if r.value is not None)

        dead = FailingFirst(producer, failures=2)
        loop = ConsumerLoop(settings, f"{settings.kafka.topic_prefix}-loop", [topic], handler,
                            dead_letter=dead, batch_attempts=1)  # fmt: skip
        loop_ref.append(loop)
        await loop.start()
        task = asyncio.create_task(_supervise("test-loop", loop.run))
        try:
            async with asyncio.timeout(60):
                while len(set(applied)) < 29:
                    await asyncio.sleep(0.05)
                tp = partitions[0]
                while await loop.consumer.committed(tp) != 30:  # type: ignore[union-attr]
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await loop.stop()
        expected = [str(i).encode() for i in range(30) if str(i).encode() != POISON]
        counts = Counter(applied)
        assert sorted(counts, key=int) == expected
        assert set(counts.values()) == {1}, (
            f"applied more than once: {[v for v, n in counts.items() if n > 1]}"
        )
        assert violations == []
        assert dead.attempts == 3  # two failed sends, then the one the broker took
        assert await _read_all(settings, settings.kafka.dead_letter_topic) == [POISON]
    finally:
        await producer.stop()
