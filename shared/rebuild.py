"""Rebuild a package's tables from the plays topic while its service keeps serving.

1. A shadow schema of the rebuild's own gets the package's schema.sql.
2. A consumer group of its own (`<service group>-rebuild-<UTC time>`, partitions assigned, never
   a member of the service's group) replays the topic from offset 0 to the end offsets it saw at
   start, through the package's own apply code pointed at the shadow schema. Rounds repeat to the
   new end offsets until one replays fewer than `CATCH_UP_RECORDS` records.
3. It takes the package's swap lock exclusive (writers hold it shared for each transaction): live
   batches in flight commit first, later ones wait. Every record the live consumers applied
   was in the topic before the lock was taken, so end offsets read now bound them all: the
   shadow catches up to these offsets, gets every partition the live tables have, and is swapped
   in (shared.shadow.swap). Then the lock is released and the live consumers go on from their
   own offsets into the new tables; what they apply again of what the rebuild already applied
   changes nothing (newest revision wins, contributions are replaced by difference).
4. The checksum is taken in a snapshot opened before the lock was released: the tables exactly as
   swapped in. The rebuild's group is deleted and its shadow dropped, whatever happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter, Gauge

from shared import shadow
from shared.config import Settings
from shared.db import Pools, lock_key, open_pools, postgres_dependency
from shared.deps import Dependency
from shared.kafka import TRANSIENT, Record, delete_groups
from shared.kafkaauth import client_options
from shared.logging import get_logger

log = get_logger(__name__)
REBUILD_RECORDS = Counter(
    "snapline_rebuild_records_total", "Kafka records a rebuild replayed", ["target", "outcome"]
)
REBUILD_SECONDS = Gauge(
    "snapline_rebuild_seconds", "Duration of the last rebuild's phases", ["target", "phase"]
)
CATCH_UP_RECORDS = 2000  # a round replaying fewer than this is followed by the locked, final one
STALL_SECONDS = 120.0  # no record for this long while short of the end offsets: the rebuild fails
Apply = Callable[[Sequence[bytes]], Awaitable[int]]
Offsets = dict[TopicPartition, int]


class RebuildError(Exception):
    """The rebuild could not finish; nothing was swapped in."""


@dataclass(frozen=True)
class Target:
    """What a package rebuilds: its tables, its apply code over given pools, what follows a swap."""

    name: str
    tables: shadow.OwnedTables
    applier: Callable[[Dependency[Pools]], Apply]
    after_swap: Callable[[Settings], Awaitable[None]] | None = None


@dataclass
class Report:
    """What a rebuild did: records replayed, the swapped-in tables' row counts and digests."""

    target: str
    group: str
    records: int = 0
    skipped: int = 0
    rounds: int = 0
    seconds: float = 0.0
    locked_seconds: float = 0.0
    end_offsets: dict[int, int] = field(default_factory=dict)  # partition -> offset swapped in at
    tables: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def checksum(self) -> str:
        return shadow.combined(self.tables)


def group_name(settings: Settings, now: datetime) -> str:
    return f"{settings.consumer_group}-rebuild-{now.strftime('%Y%m%dT%H%M%S%fZ')}"


async def _ready(dep: Dependency[Pools], what: str) -> Pools:
    dep.start()
    try:
        return await asyncio.wait_for(dep.wait(), 60)
    except TimeoutError:
        raise RebuildError(f"cannot reach PostgreSQL for {what}: {dep.last_error}") from None


class _Replay:
    """The rebuild's consumer: assigned every partition, read from offset 0 up to given offsets."""

    def __init__(self, settings: Settings, target: str, group: str, apply: Apply) -> None:
        self._settings = settings
        self._target = target
        self._apply = apply
        self.group = group
        self.consumer = AIOKafkaConsumer(
            **client_options(settings.kafka), group_id=group, client_id=f"snapline-rebuild-{target}",
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=settings.consumer_batch, fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )  # fmt: skip
        self.partitions: list[TopicPartition] = []
        self.records = 0
        self.skipped = 0

    def __repr__(self) -> str:
        return f"_Replay(group={self.group!r}, records={self.records}, skipped={self.skipped})"

    async def start(self) -> None:
        await self.consumer.start()
        topic = self._settings.kafka.plays_topic
        metadata = await self.consumer._client.fetch_all_metadata()  # the same call the services' checks make
        ids = metadata.partitions_for_topic(topic)
        if not ids:
            raise RebuildError(f"topic {topic} does not exist")
        self.partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)

    async def end_offsets(self) -> Offsets:
        ends: Offsets = await self.consumer.end_offsets(self.partitions)
        return ends

    async def to(self, ends: Offsets) -> int:
        """Apply every record before `ends`; returns how many records were replayed."""
        done = 0
        remaining = {tp for tp in self.partitions if await self.consumer.position(tp) < ends[tp]}
        self.consumer.resume(*self.partitions)
        self.consumer.pause(*(set(self.partitions) - remaining))
        last_progress = time.monotonic()
        while remaining:
            batches = await self.consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                wanted = [r for r in records if r.offset < ends[tp]]
                if len(wanted) < len(records):  # fetched past the end: read those again next round
                    self.consumer.seek(tp, ends[tp])
                if wanted:
                    await self._apply_records(wanted)
                    done += len(wanted)
                    last_progress = time.monotonic()
            for tp in list(remaining):
                if await self.consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    self.consumer.pause(tp)
            if batches:
                # Progress is visible in the rebuild's own group (kafka-consumer-groups --describe).
                await self.consumer.commit({tp: await self.consumer.position(tp) for tp in batches})
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise RebuildError(f"no records for {STALL_SECONDS:.0f} s short of the end offsets")
        self.records += done
        return done

    async def _apply_records(self, records: list[Record]) -> None:
        """Apply a partition's records; transient failures retry, a record that fails on its own
        is skipped as the live consumers dead-lettered it (so their tables lack it too)."""
        if await self._attempt(records):
            REBUILD_RECORDS.labels(self._target, "applied").inc(len(records))
            return
        for record in records:
            if await self._attempt([record]):
                REBUILD_RECORDS.labels(self._target, "applied").inc()
                continue
            self.skipped += 1
            REBUILD_RECORDS.labels(self._target, "skipped").inc()
            log.error("rebuild_record_skipped", target=self._target, topic=record.topic,
                      partition=record.partition, offset=record.offset)  # fmt: skip

    async def _attempt(self, records: list[Record]) -> bool:
        delay = 0.2
        deadline = time.monotonic() + STALL_SECONDS
        while True:
            try:
                await self._apply([r.value for r in records if r.value is not None])
                return True
            except TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise RebuildError(
                        f"a dependency stayed unavailable: {type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("rebuild_waiting_for_dependency", target=self._target, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:
                log.warning("rebuild_batch_failed", target=self._target, records=len(records),
                            error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                return False

    async def close(self) -> None:
        """Leave and delete the rebuild's group."""
        await self.consumer.stop()
        admin = AIOKafkaAdminClient(**client_options(self._settings.kafka),
                                    client_id="snapline-rebuild")  # fmt: skip
        await admin.start()
        try:
            await delete_groups(admin, [self.group])
        finally:
            await admin.close()


async def rebuild(
    settings: Settings, target: Target, on_caught_up: Callable[[], Awaitable[None]] | None = None
) -> Report:
    """Rebuild `target`'s tables from offset 0 and swap them in; `settings` are its service's.

    `on_caught_up` runs after the rounds without the lock, just before it is taken (tests publish
    there what arrives during a rebuild, for the live consumers and the locked round to race on).
    """
    started = time.monotonic()
    report = Report(target.name, group_name(settings, datetime.now(UTC)))
    live = await open_pools(dataclasses.replace(settings, database_replica_url=None), max_size=3)
    try:
        async with live.primary.acquire() as guard:
            running = lock_key(f"snapline rebuild {target.tables.package}")
            if not await guard.fetchval("SELECT pg_try_advisory_lock($1)", running):
                raise RebuildError(f"another rebuild of {target.name} is running")
            try:
                await _rebuild(settings, target, live, guard, report, on_caught_up)
            finally:
                await guard.execute("SELECT pg_advisory_unlock($1)", running)
    finally:
        await live.primary.close()
    report.seconds = time.monotonic() - started
    REBUILD_SECONDS.labels(target.name, "total").set(report.seconds)
    log.info("rebuild_done", target=target.name, group=report.group, records=report.records,
             skipped=report.skipped, rounds=report.rounds, seconds=round(report.seconds, 2),
             locked_seconds=round(report.locked_seconds, 3), checksum=report.checksum,
             rows={t: n for t, (n, _) in report.tables.items()})  # fmt: skip
    return report


async def _rebuild(settings: Settings, target: Target, live: Pools, guard: asyncpg.Connection,
                   report: Report, on_caught_up: Callable[[], Awaitable[None]] | None) -> None:  # fmt: skip
    owned = target.tables
    live_schema: str = await guard.fetchval("SELECT current_schema()")
    name = f"{live_schema}_rebuild_{target.name}_{report.group.rsplit('-', 1)[-1].lower()}"[:63]
    await guard.execute(f"CREATE SCHEMA {shadow.ident(name)}")
    shadow_settings = dataclasses.replace(
        settings, database_url=shadow.with_search_path(settings.database_url, name), database_replica_url=None
    )
    db = postgres_dependency(shadow_settings, migrations=owned.package, max_size=4)
    replay: _Replay | None = None
    try:
        pools = await _ready(db, "the shadow schema")
        replay = _Replay(settings, target.name, report.group, target.applier(db))
        await replay.start()
        log.info("rebuild_started", target=target.name, group=report.group, shadow=name, live=live_schema)
        phase = time.monotonic()
        while True:  # rounds without the lock, until one replays little
            report.rounds += 1
            if await replay.to(await replay.end_offsets()) < CATCH_UP_RECORDS:
                break
        if on_caught_up is not None:
            await on_caught_up()
        REBUILD_SECONDS.labels(target.name, "replay").set(time.monotonic() - phase)
        await guard.execute("SELECT pg_advisory_lock($1)", owned.swap_lock)
        locked = time.monotonic()
        try:
            ends = await replay.end_offsets()
            await replay.to(ends)
            async with pools.primary.acquire() as conn:
                await shadow.match_partitions(guard, conn, owned, live_schema, name)
                archived = await shadow.drop_archived(guard, conn, owned, live_schema)
            await shadow.swap(guard, owned, live_schema, name)
            snapshot = await live.primary.acquire()
            tx = snapshot.transaction(isolation="repeatable_read", readonly=True)
            await tx.start()
            await snapshot.fetchval("SELECT 1")  # the snapshot: the tables as swapped in
        finally:
            await guard.execute("SELECT pg_advisory_unlock($1)", owned.swap_lock)
            report.locked_seconds = time.monotonic() - locked
            REBUILD_SECONDS.labels(target.name, "locked").set(report.locked_seconds)
        report.end_offsets = {tp.partition: off for tp, off in ends.items()}
        log.info("rebuild_swapped", target=target.name, records=replay.records, archived_seasons_left_out=archived,
                 locked_seconds=round(report.locked_seconds, 3), end_offsets=report.end_offsets)  # fmt: skip
        try:
            report.tables = await shadow.digests(snapshot, owned)
        finally:
            await tx.rollback()
            await live.primary.release(snapshot)
        if target.after_swap is not None:
            await target.after_swap(settings)
    finally:
        if replay is not None:
            report.records, report.skipped = replay.records, replay.skipped
            await replay.close()
        await db.stop()
        await shadow.drop_schema(guard, name)
