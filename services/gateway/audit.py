"""The audit log: admin actions and feed writes, queued in process and written to `audit_log` in batches.

A request puts its record on a bounded queue and goes on; one background writer takes whatever
is queued (up to AUDIT_BATCH records) and inserts it in one statement, so a burst of feed
writes costs PostgreSQL one round trip per batch, not one per request. Nothing is lost quietly:

- a full queue makes the request wait up to AUDIT_ENQUEUE_TIMEOUT for room (the write it records
  has already happened upstream, so refusing the caller would only invite a retry); after that
  the record is dropped, counted (`snapline_gateway_audit_records_total{outcome="dropped"}`) and
  logged whole at error level, so the log still holds it;
- a batch PostgreSQL refuses is retried with backoff until it is written (the queue fills
  meanwhile, and the rule above applies);
- at shutdown (after the last request) the writer gets SHUTDOWN_FLUSH seconds to write what is
  queued; what is left is dropped the same way.

Records queued when the process dies (SIGKILL, a crash) are lost: at most the batch in flight
and the queue behind it, usually nothing (the writer drains within milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge, Histogram

from shared.deps import Unavailable
from shared.logging import get_logger
from shared.tasks import stop_task

log = get_logger(__name__)
SHUTDOWN_FLUSH = 5.0  # seconds the writer has at shutdown to write what is queued
MAX_DETAIL = 4096  # bytes of a record's detail JSON; a longer one is replaced by a note saying so
QUEUED = Gauge("snapline_gateway_audit_queue", "Audit records waiting for the writer")
QUEUE_LIMIT = Gauge("snapline_gateway_audit_queue_limit", "Size of the audit queue (AUDIT_QUEUE_SIZE)")
RECORDS = Counter(
    "snapline_gateway_audit_records_total",
    "Audit records by outcome: written to PostgreSQL, or dropped (queue full past the wait, or left at shutdown)",
    ["outcome"],
)
for _outcome in ("written", "dropped"):  # both exported from the start (at 0), for the alert rules
    RECORDS.labels(_outcome)
WRITE_FAILURES = Counter(
    "snapline_gateway_audit_write_failures_total", "Audit batches PostgreSQL refused (retried until written)"
)
BATCH_SECONDS = Histogram(
    "snapline_gateway_audit_write_seconds",
    "Time to insert one batch of audit records",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
_encoder = msgspec.json.Encoder()
# Failures that pass: PostgreSQL unreachable, restarting or not connected yet. A batch is retried
# through them until it is written.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    Unavailable,
)
COLUMNS = (
    "at",
    "actor",
    "actor_key_id",
    "role",
    "action",
    "target",
    "address",
    "request_id",
    "status",
    "detail",
)
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
    "SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::text[], $8::text[], $9::smallint[], $10::jsonb[])"
)


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One audit record as the gateway made it (the row, without its id)."""

    at: datetime
    actor: str
    actor_key_id: str | None
    role: str
    action: str
    target: str | None
    address: str
    request_id: str
    status: int
    detail: dict[str, Any]

    def detail_json(self) -> str:
        """The detail as JSON that jsonb takes (no NUL escapes) and at most MAX_DETAIL bytes."""
        raw = _encoder.encode(self.detail).replace(b"\\u0000", b"\\ufffd")
        if len(raw) > MAX_DETAIL:
            raw = _encoder.encode({"truncated": True, "bytes": len(raw)})
        return raw.decode()


class AuditLog:
    """The queue of records and the writer that drains it into `audit_log`."""

    def __init__(
        self, pool: Callable[[], asyncpg.Pool], size: int, batch: int, enqueue_timeout: float
    ) -> None:
        if size < 1 or batch < 1:
            raise ValueError(f"AUDIT_QUEUE_SIZE and AUDIT_BATCH must be at least 1, got {size} and {batch}")
        self._pool = pool
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(size)
        self._batch = batch
        self._enqueue_timeout = enqueue_timeout
        self._writing: list[Entry] = []  # the batch being written
        QUEUE_LIMIT.set(size)
        QUEUED.set_function(self._queue.qsize)

    def __repr__(self) -> str:
        return f"AuditLog(queued={self._queue.qsize()}, limit={self._queue.maxsize}, batch={self._batch})"

    async def record(self, entry: Entry) -> None:
        """Queue `entry`; waits for room at most the enqueue timeout, then drops it (counted, logged)."""
        try:
            self._queue.put_nowait(entry)
            return
        except asyncio.QueueFull:
            pass
        try:
            async with asyncio.timeout(self._enqueue_timeout):
                await self._queue.put(entry)
        except TimeoutError:
            _drop([entry], "audit queue full")

    async def run(self) -> None:
        """Write queued records in batches, for ever (the app's cleanup ends it with `close`)."""
        while True:
            self._writing = [await self._queue.get()]
            while len(self._writing) < self._batch and not self._queue.empty():
                self._writing.append(self._queue.get_nowait())
            await self._write_until_done(self._writing)
            for _ in self._writing:
                self._queue.task_done()
            self._writing = []

    async def close(self, writer: asyncio.Task[None]) -> None:
        """Let `writer` write what is queued (SHUTDOWN_FLUSH at most), stop it, drop (logged) what is left."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), SHUTDOWN_FLUSH)
        await stop_task(writer, "gateway-audit")
        left = self._writing + [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        self._writing = []
        if left:
            _drop(left, "not written before shutdown")

    async def _write_until_done(self, batch: list[Entry]) -> None:
        """Write `batch`, retrying while PostgreSQL is away; a batch it refuses is written record by record."""
        delay = 0.2
        while True:
            try:
                await self._write(batch)
                return
            except TRANSIENT as exc:
                WRITE_FAILURES.inc()
                log.warning("audit_write_failed", records=len(batch), error=f"{type(exc).__name__}: {exc}",
                            retry_in=delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except asyncpg.PostgresError as exc:
                # Not an outage: some record it holds cannot be stored. The others must not wait
                # for it for ever; the one that fails alone is dropped (counted, logged whole).
                WRITE_FAILURES.inc()
                log.error("audit_batch_refused", records=len(batch), error=f"{type(exc).__name__}: {exc}")
                await self._one_by_one(batch)
                return

    async def _one_by_one(self, batch: list[Entry]) -> None:
        for entry in batch:
            try:
                await self._write([entry])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, TRANSIENT):
                    await self._write_until_done([entry])
                else:
                    _drop([entry], f"refused by PostgreSQL: {type(exc).__name__}: {exc}")

    async def _write(self, batch: list[Entry]) -> None:
        started = time.perf_counter()
        await insert(self._pool(), batch)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        RECORDS.labels("written").inc(len(batch))


async def insert(pool: asyncpg.Pool, batch: list[Entry]) -> None:
    """Insert `batch` in one statement (the writer's batches; the set-up's bootstrap writes its one record here)."""
    columns: list[list[Any]] = [[] for _ in COLUMNS]
    for entry in batch:
        for i, name in enumerate(COLUMNS[:-1]):
            value = getattr(entry, name)
            columns[i].append(value.replace("\x00", "\ufffd") if isinstance(value, str) else value)
        columns[-1].append(entry.detail_json())
    await pool.execute(_INSERT, *columns)


def _drop(entries: list[Entry], why: str) -> None:
    RECORDS.labels("dropped").inc(len(entries))
    for entry in entries:
        log.error("audit_record_dropped", reason=why, record=msgspec.to_builtins(entry))


_SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM audit_log"


async def newest(pool: asyncpg.Pool, where: str, args: list[Any], limit: int) -> list[asyncpg.Record]:
    """Up to `limit` rows matching `where` (numbered placeholders over `args`), newest first."""
    sql = f"{_SELECT} WHERE {where} ORDER BY at DESC, id DESC LIMIT {limit:d}"
    return list(await pool.fetch(sql, *args))
