"""Kafka producer factory, topic set-up and the consumer loop every projector uses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import asyncpg
import redis.exceptions
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IllegalStateError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from shared.config import KafkaSettings, Settings
from shared.deps import Dependency, Unavailable
from shared.http import add_background, add_dependency
from shared.kafkaauth import check as check_client_settings
from shared.kafkaauth import client_options
from shared.logging import bound_contextvars, get_logger
from shared.telemetry import (
    CONSUMER_BATCH_SECONDS,
    CONSUMER_LAG,
    CONSUMER_MESSAGES,
    CONSUMER_REWINDS,
    CONSUMER_WAITS,
    batch_parent,
    kafka_headers,
    messaging_attributes,
    tracer,
)

log = get_logger(__name__)
STOP_SECONDS = 10.0  # each of a stopping consumer's last commit and its leaving the group
# Failures of infrastructure, not of the record: retried until they pass, never dead-lettered.
TRANSIENT: tuple[type[BaseException], ...] = (
    Unavailable,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,  # a clean PostgreSQL stop ends the sessions with it
    asyncpg.CrashShutdownError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KafkaError,
)
_DEPENDENCY_MODULES = (("asyncpg", "postgres"), ("redis", "redis"), ("aiokafka", "kafka"))


def dependency_of(exc: BaseException) -> str:
    """The dependency a TRANSIENT failure came from (postgres, redis, kafka), for logs and metrics.

    A refused connection is a bare OSError whichever client made it: the innermost frame of a
    client library in its traceback names it then.
    """
    if isinstance(exc, Unavailable):
        return exc.name
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return "postgres"
    if isinstance(exc, redis.exceptions.RedisError):
        return "redis"
    if isinstance(exc, KafkaError):
        return "kafka"
    found = "unknown"
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        found = next((name for prefix, name in _DEPENDENCY_MODULES if module.startswith(prefix)), found)
        tb = tb.tb_next
    return found


Record: TypeAlias = ConsumerRecord
BatchHandler = Callable[[Sequence[Record]], Awaitable[None]]

# Records of history (bulk imports of past games) carry this header; live events carry none.
# Query and analytics apply both alike; live broadcasts only live events (see services/live).
HISTORY_HEADER = ("snapline-delivery", b"history")


def is_history(record: Record) -> bool:
    """Whether a record holds history rather than live events."""
    return HISTORY_HEADER in (record.headers or ())


def history_games(records: Sequence[Record]) -> set[str]:
    """The games (record keys) whose records in `records` are all history: consumers value them
    in the background (shared/valuing.py) instead of keeping a bulk import waiting."""
    live = {r.key for r in records if not is_history(r)}
    return {r.key.decode() for r in records if r.key and r.key not in live}


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    """A producer that never reports a record as sent before every in-sync replica has it.

    acks=all waits for every replica in sync, and the topic's min.insync.replicas (2 of 3 on a
    cluster) refuses a write with fewer: an acknowledged record survives the loss of a broker.
    """
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,  # no duplicates or reordering from the producer's own retries
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
        metadata_max_age_ms=60000,
    )


async def _start_producer(settings: Settings) -> AIOKafkaProducer:
    producer = make_producer(settings.kafka, f"snapline-{settings.service}")
    try:
        await producer.start()
    except Exception:
        await producer.stop()
        raise
    return producer


async def _check_producer(producer: AIOKafkaProducer) -> object:
    return await producer.client.fetch_all_metadata()


def producer_dependency(settings: Settings) -> Dependency[AIOKafkaProducer]:
    """The service's producer, started in the background."""
    check_client_settings(settings.kafka)  # a TLS file that cannot be loaded stops the start here
    return Dependency(
        "kafka",
        settings.service,
        lambda: _start_producer(settings),
        lambda p: p.stop(),
        _check_producer,
    )


# The plays topic is the system of record: `snapline rebuild` replays it from offset 0, so it is
# kept whole, forever (no time or size limit; these override the broker's log.retention.*). Not
# compacted: a record is keyed by game and holds a batch of that game's events, so compaction would
# keep one batch per game, not the latest revision of each play. A season is ~50k plays, ~75 MB.
RETAINED_FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def topic_specs(settings: KafkaSettings) -> list[NewTopic]:
    """Every topic the platform uses, with its partition count and settings."""
    return [
        NewTopic(
            settings.plays_topic,
            settings.play_partitions,
            settings.replication_factor,
            topic_configs={"min.insync.replicas": str(settings.min_insync_replicas), **RETAINED_FOREVER},
        ),
        NewTopic(
            settings.dead_letter_topic,
            1,
            settings.replication_factor,
            topic_configs={"min.insync.replicas": str(settings.min_insync_replicas), **RETAINED_FOREVER},
        ),
    ]


async def ensure_topics(settings: KafkaSettings, topics: Sequence[NewTopic] | None = None) -> list[str]:
    """Create the topics that do not exist yet and wait until every partition has a leader.

    Returns the names created. Waiting matters: a consumer that subscribes before the new
    topic's metadata is out is assigned no partitions until its next metadata refresh.
    """
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="snapline-topics")
    await admin.start()
    try:
        wanted = list(topics or topic_specs(settings))
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another instance won the race
                await admin.create_topics(missing)
        await _wait_for_leaders(admin, {t.name: t.num_partitions for t in wanted})
        await _set_configs(admin, wanted)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def topic_configs(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each topic's effective configuration (name -> value)."""
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    return {
        name: {entry[0]: entry[1] for entry in entries}
        for response in responses
        for _code, _message, _type, name, entries in response.resources
    }


async def _set_configs(admin: AIOKafkaAdminClient, topics: Sequence[NewTopic]) -> None:
    """Give topics made before their settings (or changed by hand) the settings of topic_specs."""
    current = await topic_configs(admin, [t.name for t in topics])
    drifted = [
        t for t in topics if any(current.get(t.name, {}).get(k) != v for k, v in t.topic_configs.items())
    ]
    if not drifted:
        return
    # AlterConfigs replaces a topic's whole set of overrides: every setting of the spec is sent.
    await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t.name, configs=dict(t.topic_configs)) for t in drifted]
    )
    log.info("topic_configs_set", topics=[t.name for t in drifted])


async def delete_topics(settings: KafkaSettings) -> None:
    """Delete the platform's topics under `settings.topic_prefix` and the consumer groups named
    `<prefix>-*` that read them (tests and benchmarks clean up)."""
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="snapline-topics")
    await admin.start()
    try:
        await admin.delete_topics([t.name for t in topic_specs(settings)])
        groups = [
            g[0] for g in await admin.list_consumer_groups() if g[0].startswith(f"{settings.topic_prefix}-")
        ]
        await delete_groups(admin, groups)
    finally:
        await admin.close()


async def delete_groups(admin: AIOKafkaAdminClient, groups: list[str]) -> None:
    """Delete consumer groups (aiokafka's admin client has no call for it: the DeleteGroups request)."""
    for group in groups:
        node = await admin.find_coordinator(group)
        response = await admin._send_request_to_node(node, DeleteGroupsRequest([group]))
        for name, code in response.results:
            # 69: the group does not exist (any more); 68: it still has members (a consumer that
            # was not stopped): neither is this clean-up's to fix, so it is logged and left.
            if code not in (0, 69):
                log.warning("consumer_group_not_deleted", group=name, error_code=code)


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], seconds: float = 30
) -> None:
    async with asyncio.timeout(seconds):
        while True:
            described = await admin.describe_topics(list(partitions))
            ready = {
                d["topic"] for d in described
                if d.get("error_code", 0) == 0 and len(d["partitions"]) >= partitions[d["topic"]]
                and all(p["leader"] >= 0 for p in d["partitions"])
            }  # fmt: skip
            if ready >= set(partitions):
                return
            await asyncio.sleep(0.1)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._loop.commit_processed(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions_assigned",
            group=self._loop.group,
            partitions=sorted(tp.partition for tp in assigned),
        )


class ConsumerLoop:
    """Consume `topics` in `group`; hand each partition's batch to `handler`, then commit.

    Offsets are committed only after the handler returned, and again for revoked partitions
    during a rebalance. A failing batch is retried from its first record with backoff;
    when it keeps failing, records are retried one by one and those that still fail go to
    the dead-letter topic with the error, so one poison record never stalls a game.
    """

    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: Sequence[str],
        handler: BatchHandler,
        dead_letter: Dependency[AIOKafkaProducer] | AIOKafkaProducer | None = None,
        max_records: int = 500,
        batch_attempts: int = 4,
        fetch_wait_ms: int = 0,
    ) -> None:
        self.group = group
        self._settings = settings
        self._topics = list(topics)
        self._handler = handler
        self._dead_letter = dead_letter
        self._max_records = max_records
        self._batch_attempts = batch_attempts
        # Projectors trade a few ms of latency for bigger transactions; live keeps 0.
        self._fetch_wait_ms = fetch_wait_ms
        check_client_settings(settings.kafka)
        self._processed: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.handled = 0
        self._last_error: BaseException = RuntimeError("no error")

    @classmethod
    def plays(
        cls, settings: Settings, handler: BatchHandler, dead_letter: Dependency[AIOKafkaProducer],
        fetch_wait_ms: int = 0,
    ) -> ConsumerLoop:  # fmt: skip
        """The loop every consumer service runs: the plays topic, in the service's own group."""
        return cls(settings, settings.consumer_group, [settings.kafka.plays_topic], handler,
                   dead_letter=dead_letter, max_records=settings.consumer_batch, fetch_wait_ms=fetch_wait_ms)  # fmt: skip

    def __repr__(self) -> str:
        return f"ConsumerLoop(group={self.group!r}, topics={self._topics}, handled={self.handled})"

    async def start(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            **client_options(self._settings.kafka),
            group_id=self.group,
            client_id=f"snapline-{self._settings.service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._max_records,
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=30000,
            heartbeat_interval_ms=3000,
            max_poll_interval_ms=300000,
            isolation_level="read_committed",
            fetch_min_bytes=256 * 1024 if self._fetch_wait_ms else 1,
            fetch_max_wait_ms=self._fetch_wait_ms or 500,
        )
        await consumer.start()
        consumer.subscribe(self._topics, listener=_CommitOnRevoke(self))
        self.consumer = consumer
        return consumer

    async def stop(self) -> None:
        """Commit what was processed and leave the group, each within STOP_SECONDS.

        A shutdown must end: a commit that waits on a rebalance that does not settle, or a group
        coordinator that does not answer, is given up (logged); what was applied and not committed
        is delivered again to the next owner, which the idempotent handlers make harmless.
        """
        if self.consumer is None:
            return
        consumer = self.consumer
        try:
            async with asyncio.timeout(STOP_SECONDS):
                async with self._lock:
                    await self._commit(self._processed)
        except TimeoutError:
            log.warning("consumer_stop_commit_gave_up", group=self.group, seconds=STOP_SECONDS)
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await consumer.stop()
        except TimeoutError:
            log.warning("consumer_stop_gave_up", group=self.group, seconds=STOP_SECONDS)
        self.consumer = None

    async def commit_processed(self, partitions: Sequence[TopicPartition]) -> None:
        """Commit what was applied of the revoked partitions (called during a rebalance).

        It takes no lock: the fetch loop may itself be waiting, inside its commit, for this
        rebalance to end. A fetch still being applied is not in `_processed` yet; the next
        owner reads it again, which the idempotent handlers make harmless.
        """
        offsets = {tp: off for tp, off in self._processed.items() if tp in partitions}
        for tp in partitions:
            self._processed.pop(tp, None)
        await self._commit(offsets)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets and self.consumer is not None:
            try:
                await self.consumer.commit(dict(offsets))
            except Exception as exc:  # the next commit or the next owner re-reads: handlers are idempotent
                log.warning("commit_failed", group=self.group, error=str(exc))

    async def run(self) -> None:
        """Fetch and handle batches until cancelled.

        A failure anywhere in handling a fetch (the handler, a dead-letter send) rewinds each of its
        partitions to the first record not yet applied before it propagates: the supervisor's
        next `run()` reads those records again, so a failure can only cause redelivery, never a
        skip, and no commit ever passes a record that was not applied.
        """
        consumer = self.consumer or await self.start()
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            # Lag counts this fetch until it is applied: while a dependency is down it shows the
            # records waiting, not the lag of the last batch that went through.
            self._set_lag(consumer, {tp: part[0].offset for tp, part in batches.items() if part})
            async with self._lock:
                # One handler call per fetch: records of different partitions are different
                # games, and each partition's records keep their order.
                applied: dict[TopicPartition, int] = {}
                try:
                    await self._handle_fetch(records, applied)
                except BaseException:
                    self._rewind(consumer, batches, applied)
                    raise
                done = {tp: part[-1].offset + 1 for tp, part in batches.items() if part}
                self._processed.update(done)
                await self._commit(done)
                self._set_lag(consumer, done)

    def _set_lag(self, consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]) -> None:
        for tp, offset in positions.items():
            end = consumer.highwater(tp)
            if end is not None:
                CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(max(end - offset, 0))

    def _rewind(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[Record]],
        applied: dict[TopicPartition, int],
    ) -> None:
        """Move each partition of a failed fetch back to its first unapplied record."""
        for tp, part in batches.items():
            if not part:
                continue
            offset = applied.get(tp, part[0].offset)
            try:
                consumer.seek(tp, offset)
            except (IllegalStateError, KafkaError):
                # No longer ours (a rebalance took it): the next owner starts from the committed
                # offset, which is never past `offset`.
                continue
            CONSUMER_REWINDS.labels(self.group).inc()
            log.warning("fetch_rewound", group=self.group, topic=tp.topic, partition=tp.partition,
                        offset=offset, skipped_ahead=part[-1].offset + 1 - offset)  # fmt: skip

    async def _handle_fetch(self, records: list[Record], applied: dict[TopicPartition, int]) -> None:
        """Apply a fetch; `applied` records, per partition, the offset after the last record done."""
        topic = records[0].topic
        # One span per fetch, as the handler applies a fetch at once: it continues the trace of
        # the fetch's first record (a posted play's trace goes on through each consumer) and
        # links to the other traces it holds.
        parent, links = batch_parent(r.headers for r in records)
        with (
            tracer(__name__).start_as_current_span(
                f"process {topic}",
                context=parent,
                links=links,
                kind=trace.SpanKind.CONSUMER,
                attributes=self._span_attributes(records),
            ),  # fmt: skip
            bound_contextvars(group=self.group, records=len(records)),
            CONSUMER_BATCH_SECONDS.labels(self.group).time(),
        ):
            if await self._with_retries(records, self._batch_attempts):
                CONSUMER_MESSAGES.labels(self.group, topic, "ok").inc(len(records))
                self.handled += len(records)
                return
            for record in records:  # the batch keeps failing: find the record(s) at fault
                if await self._with_retries([record], 1):
                    CONSUMER_MESSAGES.labels(self.group, topic, "ok").inc()
                else:
                    await self._send_to_dead_letter(record, self._last_error)
                    CONSUMER_MESSAGES.labels(self.group, topic, "dead_letter").inc()
                applied[TopicPartition(record.topic, record.partition)] = record.offset + 1
                self.handled += 1

    def _span_attributes(self, records: list[Record]) -> dict[str, AttributeValue]:
        attributes = messaging_attributes(records[0].topic, "process", len(records))
        attributes["messaging.consumer.group.name"] = self.group
        if len(records) == 1:
            record = records[0]
            attributes["messaging.destination.partition.id"] = str(record.partition)
            attributes["messaging.kafka.offset"] = record.offset
            if record.key is not None:
                attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", "replace")
        return attributes

    async def _with_retries(self, records: list[Record], attempts: int) -> bool:
        """Run the handler; transient (infrastructure) failures retry without limit."""
        delay = 0.2
        failures = 0
        while True:
            try:
                await self._handler(records)
                return True
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                self._last_error = exc
                dependency = dependency_of(exc)
                CONSUMER_WAITS.labels(self.group, dependency).inc()
                log.warning("batch_waiting_for_dependency", group=self.group, dependency=dependency,
                            records=len(records), retry_in=delay, error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            except Exception as exc:
                self._last_error = exc
                failures += 1
                log.warning("batch_failed", group=self.group, attempt=failures, records=len(records),
                            error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                if failures >= attempts:
                    return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _send_to_dead_letter(self, record: Record, exc: BaseException) -> None:
        """Publish a record that cannot be applied to the dead-letter topic; raises when that fails."""
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if self._dead_letter is None:
            raise RuntimeError(
                f"no dead-letter producer for {self.group}; refusing to drop a record"
            ) from exc
        headers = kafka_headers(
            [
                ("dlq.group", self.group.encode()),
                ("dlq.error", error.encode()),
                ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ]
        )
        where = {"group": self.group, "topic": record.topic, "partition": record.partition,
                 "offset": record.offset}  # fmt: skip
        try:
            producer = (
                self._dead_letter.get() if isinstance(self._dead_letter, Dependency) else self._dead_letter
            )
            await producer.send_and_wait(
                self._settings.kafka.dead_letter_topic, record.value, key=record.key, headers=headers
            )
        except asyncio.CancelledError:
            raise
        except Exception as send_exc:
            log.error("dead_letter_failed", **where, error=error,
                      send_error=f"{type(send_exc).__name__}: {send_exc}")  # fmt: skip
            raise
        # Logged once the broker has it: the line is the record's receipt.
        log.error("dead_lettered", **where, error=error)


def consumer_dependency(loop: ConsumerLoop, settings: Settings) -> Dependency[Any]:
    """A consumer loop started in the background once the broker answers."""

    async def check(consumer: AIOKafkaConsumer) -> object:
        return await consumer._client.fetch_all_metadata()

    return Dependency("kafka-consumer", settings.service, loop.start, lambda _: loop.stop(), check)


async def run_when_connected(dependency: Dependency[Any], loop: ConsumerLoop) -> None:
    """Wait until the consumer has joined, then run its loop (for `add_background`)."""
    await dependency.wait()
    await loop.run()


def add_consumer(app: web.Application, key: web.AppKey[Any], loop: ConsumerLoop, settings: Settings) -> None:
    """Join `loop`'s group in the background (checked by /readyz), run it while the app runs,
    and leave the group, offsets committed, at shutdown."""
    add_dependency(app, key, consumer_dependency(loop, settings))
    add_background(app, f"{settings.service}-consumer", lambda: run_when_connected(app[key], loop))
