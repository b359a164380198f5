"""Deduplicates events by (game, play, revision) and event id, then publishes them to Kafka.

The dedupe marks live in Redis; the consumers are idempotent too (a revision guard), so a
lost Redis never yields a second play, only a second Kafka record that is then ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from shared.config import Settings, SettingsError
from shared.deps import Dependency, Unavailable
from shared.events import PlayDeleted, PlayEvent, PlayEventBatch, encoder
from shared.kafka import HISTORY_HEADER
from shared.logging import get_logger
from shared.teams import canonical_event
from shared.telemetry import PRODUCER_RECORDS, kafka_headers, messaging_attributes, tracer

log = get_logger(__name__)
EVENTS = Counter("snapline_ingest_events_total", "Events received by outcome", ["outcome"])
PUBLISH_SECONDS = Histogram("snapline_ingest_publish_seconds", "Time until Kafka acknowledged a batch")
PENDING = Gauge("snapline_ingest_pending_records", "Records sent to Kafka and not yet acknowledged")
REFUSED = Counter(
    "snapline_ingest_refused_total",
    "Publishes refused (503) because a dependency is unavailable",
    ["dependency"],
)
PUBLISH_TIMEOUT = 20.0
KAFKA_PROBE_TIMEOUT = 2.0
# Redis failing: the claim cannot be made, so nothing is published (a 202 it could not dedupe).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
BATCH_EVENTS = 200  # about 240 KB of GameCenter events per record

# Each game's marks live in one hash: 'p:<play>' holds the newest claimed revision, negated
# while Kafka has not acknowledged it (the claimer may die between claim and ack: the next
# sender of that revision then publishes it again instead of being told "duplicate";
# consumers are idempotent, so an extra record is harmless where a lost one is not), and
# 'e:<event id>' marks an event id already taken. One call per game reads every mark with
# one HMGET and writes the new ones with one HSET: per-play commands were most of Redis's
# CPU during bulk imports.
#
# The marks are bounded: every claim restarts the game's hash's expiry (INGEST_DEDUPE_WINDOW), so
# a game's marks go some time after its last event. A retry inside the window is a duplicate; one
# after it is published again, and the consumers' revision guard (the latest revision wins, an
# equal one is applied once) keeps it from being a second play.
#
# Claim: KEYS[1] the game's hash; ARGV (play, revision, event id) triples, then the window in ms.
# Returns, per item, {status, stored value}: status 1 publish, 0 duplicate, -1 older than stored.
_CLAIM = """
local window = ARGV[#ARGV]
local n = (#ARGV - 1) / 3
local fields = {}
for i = 1, n do
  fields[i] = 'p:' .. ARGV[3 * i - 2]
  fields[n + i] = 'e:' .. ARGV[3 * i]
end
local vals = redis.call('HMGET', KEYS[1], unpack(fields))
local plays, taken, writes, out = {}, {}, {}, {}
for i = 1, n do
  local pf, ef, rev = fields[i], fields[n + i], tonumber(ARGV[3 * i - 1])
  local mine = plays[pf]  -- claimed earlier in this same call
  local v = mine or tonumber(vals[i] or '0')
  local cur = math.abs(v)
  if rev < cur then
    out[i] = {-1, v}
  elseif rev == cur or taken[ef] or vals[n + i] then
    if v < 0 and rev == cur and not mine then out[i] = {1, v} else out[i] = {0, v} end
  else
    plays[pf] = -rev
    taken[ef] = true
    writes[#writes + 1] = pf
    writes[#writes + 1] = -rev
    writes[#writes + 1] = ef
    writes[#writes + 1] = 1
    out[i] = {1, v}
  end
end
if #writes > 0 then redis.call('HSET', KEYS[1], unpack(writes)) end
redis.call('PEXPIRE', KEYS[1], window)
return out
"""
# Kafka acknowledged these: their claims become final. KEYS[1] the game's hash; ARGV
# (play, revision) pairs, then the window in ms (the hash may have expired since the claim).
_CONFIRM = """
local window = ARGV[#ARGV]
local n = (#ARGV - 1) / 2
local fields = {}
for i = 1, n do fields[i] = 'p:' .. ARGV[2 * i - 1] end
local vals = redis.call('HMGET', KEYS[1], unpack(fields))
local writes = {}
for i = 1, n do
  if vals[i] and tonumber(vals[i]) == -tonumber(ARGV[2 * i]) then
    writes[#writes + 1] = fields[i]
    writes[#writes + 1] = ARGV[2 * i]
  end
end
if #writes > 0 then
  redis.call('HSET', KEYS[1], unpack(writes))
  redis.call('PEXPIRE', KEYS[1], window)
end
return #writes / 2
"""
# Undo claims whose records Kafka did not acknowledge, so a retry is not a "duplicate"
# (rare: per item). KEYS[i] a game's hash; ARGV (play, revision, event id, stored before).
_RELEASE = """
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 4
  local play, rev, eid, prev = ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3], ARGV[b + 4]
  if tonumber(redis.call('HGET', key, 'p:' .. play) or '0') == -rev then
    if prev == '0' then redis.call('HDEL', key, 'p:' .. play)
    else redis.call('HSET', key, 'p:' .. play, prev) end
  end
  redis.call('HDEL', key, 'e:' .. eid)
end
return 1
"""
SCRIPT_ITEMS = 1000  # items per script call: Lua's unpack() has a stack limit of about 8000


@dataclass(slots=True)
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    superseded: int = 0


def _feed_play_id(event: PlayEvent) -> str:
    return event.play_id if isinstance(event, PlayDeleted) else event.play.play_id


class Publisher:
    """Claims events in Redis and publishes the new ones; 503 unless Kafka acknowledged all."""

    def __init__(self, settings: Settings, producer: Dependency[Any], redis: Dependency[Any]) -> None:
        if settings.ingest_dedupe_window < 1:
            raise SettingsError(
                f"INGEST_DEDUPE_WINDOW must be at least 1 second, got {settings.ingest_dedupe_window}"
            )
        self._settings = settings
        self._producer = producer
        self._redis = redis
        self._scripts: tuple[Any, ...] | None = None
        self._kafka_failed = False  # the last publish found Kafka unavailable

    def __repr__(self) -> str:
        kafka = "failing" if self._kafka_failed else "ok"
        return f"Publisher(topic={self._settings.kafka.plays_topic!r}, kafka={kafka})"

    async def bound_old_marks(self) -> int:
        """Give every game's marks hash that has no expiry (written before marks expired) the window.

        Run once at start-up; returns how many hashes it bounded. Hashes that already expire
        keep their own deadline.
        """
        await self._redis.wait()
        redis = self._redis.get()
        window = int(self._settings.ingest_dedupe_window * 1000)
        bounded = 0
        keys: list[bytes] = []
        async for key in redis.scan_iter(
            match=f"{self._settings.kafka.topic_prefix}:ingest:game:*", count=1000
        ):
            keys.append(key)
            if len(keys) >= 500:
                bounded += await self._bound(redis, keys, window)
                keys = []
        if keys:
            bounded += await self._bound(redis, keys, window)
        if bounded:
            log.info("dedupe_marks_bounded", hashes=bounded, window_s=self._settings.ingest_dedupe_window)
        return bounded

    @staticmethod
    async def _bound(redis: Any, keys: list[bytes], window: int) -> int:
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.pexpire(key, window, nx=True)  # only where no expiry is set
        return sum(1 for done in await pipe.execute() if done)

    def _key(self, event: PlayEvent) -> str:
        return f"{self._settings.kafka.topic_prefix}:ingest:game:{event.game.game_id}"

    async def publish(self, events: list[PlayEvent], live: bool = True) -> Outcome:
        """Publish the events not seen before; returns the counts by outcome.

        `live=False` marks the records as history: stored and counted like any other, but not
        broadcast to live viewers (bulk imports of past games). Team codes are published as
        their franchise's code in the event's season (shared.teams), whatever the feed spelled.
        """
        events = [canonical_event(e) for e in events]
        producer: AIOKafkaProducer = self._producer.get()
        redis = self._redis.get()
        if self._scripts is None:
            self._scripts = tuple(redis.register_script(lua) for lua in (_CLAIM, _CONFIRM, _RELEASE))
        claim, confirm, release = self._scripts
        outcome = Outcome()
        if not events:
            return outcome
        await self._probe_kafka(producer, len(events))
        try:
            statuses = await self._per_game(
                claim, events, lambda e: (_feed_play_id(e), e.revision, e.event_id)
            )
        except REDIS_DOWN as exc:
            self._refuse("redis", len(events), exc)
            raise Unavailable("redis", retry_after=2) from exc
        fresh = [(e, int(prev)) for e, (status, prev) in zip(events, statuses, strict=True) if status == 1]
        outcome.duplicates = sum(1 for status, _ in statuses if status == 0)
        outcome.superseded = sum(1 for status, _ in statuses if status == -1)
        failed = await self._send(producer, [e for e, _ in fresh], live) or [False] * len(fresh)
        acked = [e for (e, _), bad in zip(fresh, failed, strict=True) if not bad]
        if acked:
            try:
                await self._per_game(confirm, acked, lambda e: (_feed_play_id(e), e.revision))
            except REDIS_DOWN as exc:
                # Kafka has them, so they are accepted. Their claims stay provisional: a retry
                # publishes them again and the consumers' revision guard applies them once.
                log.warning("dedupe_confirm_failed", events=len(acked), error=f"{type(exc).__name__}: {exc}")
        if any(failed):
            undo = [(e, prev) for (e, prev), bad in zip(fresh, failed, strict=True) if bad]
            try:
                await release(
                    keys=[self._key(e) for e, _ in undo],
                    args=[a for e, prev in undo for a in (_feed_play_id(e), e.revision, e.event_id, prev)],
                )
            except REDIS_DOWN as exc:  # provisional claims are published again by a retry anyway
                log.warning("dedupe_release_failed", events=len(undo), error=f"{type(exc).__name__}: {exc}")
            self._kafka_failed = True
            log.warning("publish_failed", events=len(fresh), unacknowledged=len(undo))
            self._refuse("kafka", len(undo))
            raise Unavailable("kafka", retry_after=5)
        outcome.accepted = len(fresh)
        EVENTS.labels("accepted").inc(outcome.accepted)
        EVENTS.labels("duplicate").inc(outcome.duplicates)
        EVENTS.labels("superseded").inc(outcome.superseded)
        return outcome

    async def _probe_kafka(self, producer: AIOKafkaProducer, events: int) -> None:
        """After a publish Kafka failed, ask it for metadata before claiming anything.

        While the broker stays away, requests are refused at once instead of each waiting
        PUBLISH_TIMEOUT with its records queued in the producer; the first answer closes the probe.
        """
        if not self._kafka_failed:
            return
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), KAFKA_PROBE_TIMEOUT)
        except Exception as exc:
            self._refuse("kafka", events, exc)
            raise Unavailable("kafka", retry_after=5) from exc
        self._kafka_failed = False
        log.info("kafka_available_again")

    @staticmethod
    def _refuse(dependency: str, events: int, exc: BaseException | None = None) -> None:
        EVENTS.labels("unavailable").inc(events)
        REFUSED.labels(dependency).inc()
        if exc is not None:
            log.warning("publish_refused", dependency=dependency, events=events,
                        error=f"{type(exc).__name__}: {exc}")  # fmt: skip

    async def _per_game(
        self, script: Any, events: list[PlayEvent], item: Callable[[PlayEvent], tuple[Any, ...]]
    ) -> list[Any]:
        """Run `script` once per game (and chunk) in one pipeline; the results per event, in order."""
        by_game: dict[str, list[int]] = {}
        for i, e in enumerate(events):
            by_game.setdefault(self._key(e), []).append(i)
        calls = [
            (key, indexes[start : start + SCRIPT_ITEMS])
            for key, indexes in by_game.items()
            for start in range(0, len(indexes), SCRIPT_ITEMS)
        ]
        client = self._redis.get()
        window = [int(self._settings.ingest_dedupe_window * 1000)]
        if len(calls) == 1:  # the usual request, one game: no pipeline and its SCRIPT EXISTS round trip
            key, chunk = calls[0]
            results = [await script(keys=[key], args=[a for i in chunk for a in item(events[i])] + window)]
        else:
            pipe = client.pipeline(transaction=False)
            for key, chunk in calls:
                await script(
                    keys=[key], args=[a for i in chunk for a in item(events[i])] + window, client=pipe
                )
            results = await pipe.execute()
        out: list[Any] = [None] * len(events)
        for (_, chunk), result in zip(calls, results, strict=True):
            if isinstance(result, list):
                for i, value in zip(chunk, result, strict=True):
                    out[i] = value
        return out

    async def _send(
        self, producer: AIOKafkaProducer, events: list[PlayEvent], live: bool = True
    ) -> list[bool]:
        """Send the events as per-game batch records; returns, per event, whether Kafka failed it."""
        topic = self._settings.kafka.plays_topic
        batches = batch_by_game(events)
        # One producer span for the request's records: they are sent together and each carries
        # its context, which the consumers' spans continue.
        with tracer(__name__).start_as_current_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(topic, "send", len(batches)),
        ) as span:
            failed = await self._send_records(producer, topic, events, batches, live)
            if failed:
                span.set_status(Status(StatusCode.ERROR, "kafka failed some records"))
            return failed

    async def _send_records(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        events: list[PlayEvent],
        batches: list[tuple[str, list[int]]],
        live: bool,
    ) -> list[bool]:
        futures: list[asyncio.Future[Any]] = []
        trace_headers = kafka_headers()  # one request, one trace context: built once
        if not live:
            trace_headers.append(HISTORY_HEADER)
        with PUBLISH_SECONDS.time():
            try:
                # One deadline for the whole request rather than a timer per record.
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    for game_id, indexes in batches:
                        value = encoder.encode(
                            PlayEventBatch(game_id=game_id, events=[events[i] for i in indexes])
                        )
                        headers = [*trace_headers, ("event_type", b"PlayEventBatch"),
                                   ("event_count", str(len(indexes)).encode())]  # fmt: skip
                        futures.append(
                            await producer.send(topic, value, key=game_id.encode(), headers=headers)
                        )
            except Exception as exc:
                log.warning("kafka_send_failed", error=f"{type(exc).__name__}: {exc}")
            PENDING.inc(len(futures))
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), PUBLISH_TIMEOUT
                )
            except TimeoutError:
                results = [TimeoutError("kafka did not acknowledge in time")] * len(futures)
            finally:
                PENDING.dec(len(futures))
        failed = [True] * len(events)  # records never sent count as failed
        for (_, indexes), result in zip(batches, results, strict=False):
            for i in indexes:
                failed[i] = isinstance(result, BaseException)
        PRODUCER_RECORDS.labels(topic, "acked").inc(sum(not isinstance(r, BaseException) for r in results))
        PRODUCER_RECORDS.labels(topic, "failed").inc(
            len(batches) - sum(not isinstance(r, BaseException) for r in results)
        )
        return failed if any(failed) else []


def batch_by_game(events: list[PlayEvent], limit: int = BATCH_EVENTS) -> list[tuple[str, list[int]]]:
    """Indexes of `events` grouped by game in order, in chunks of at most `limit` events.

    The chunk size keeps a record well under Kafka's default 1 MB message limit.
    """
    batches: list[tuple[str, list[int]]] = []
    open_batch: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        game_id = e.game.game_id
        current = open_batch.get(game_id)
        if current is None or len(current) >= limit:
            current = open_batch[game_id] = []
            batches.append((game_id, current))
        current.append(i)
    return batches
