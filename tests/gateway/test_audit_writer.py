"""The audit writer against the session's PostgreSQL: a full queue drops (counted) after its wait,
records are written in batches and at shutdown, and a record PostgreSQL would refuse is stored cleaned."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from services.gateway.audit import AuditLog, Entry


def _entry(request_id: str, **detail: Any) -> Entry:
    return Entry(
        at=datetime.now(UTC), actor="key:writer-test", actor_key_id="k1", role="admin", action="admin.test",
        target=detail.pop("target", None), address="127.0.0.1", request_id=request_id, status=200, detail=detail,
    )  # fmt: skip


def _dropped() -> float:
    return REGISTRY.get_sample_value("snapline_gateway_audit_records_total", {"outcome": "dropped"}) or 0.0


async def _rows(pool: asyncpg.Pool, prefix: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch("SELECT * FROM audit_log WHERE request_id LIKE $1 || '%' ORDER BY id", prefix)
    )


async def test_a_full_queue_waits_then_drops_and_counts(pool: asyncpg.Pool) -> None:
    prefix = f"w-{uuid.uuid4().hex[:8]}-"
    log = AuditLog(lambda: pool, size=2, batch=10, enqueue_timeout=0.05)
    before = _dropped()
    for i in range(3):  # no writer yet: the third finds the queue full
        await log.record(_entry(f"{prefix}{i}"))
    assert _dropped() == before + 1
    writer = asyncio.create_task(log.run())
    async with asyncio.timeout(10):
        while len(await _rows(pool, prefix)) < 2:
            await asyncio.sleep(0.02)
    await log.close(writer)
    assert [r["request_id"] for r in await _rows(pool, prefix)] == [f"{prefix}0", f"{prefix}1"]


async def test_close_writes_what_is_queued(pool: asyncpg.Pool) -> None:
    prefix = f"c-{uuid.uuid4().hex[:8]}-"
    log = AuditLog(lambda: pool, size=1000, batch=7, enqueue_timeout=1.0)
    for i in range(50):
        await log.record(_entry(f"{prefix}{i:02d}", n=i))
    writer = asyncio.create_task(log.run())
    before = _dropped()
    await log.close(writer)  # at once: the writer has barely started
    rows = await _rows(pool, prefix)
    assert [r["request_id"] for r in rows] == [f"{prefix}{i:02d}" for i in range(50)]
    assert _dropped() == before and writer.done()


async def test_nul_characters_are_stored_replaced(pool: asyncpg.Pool) -> None:
    prefix = f"n-{uuid.uuid4().hex[:8]}-"
    log = AuditLog(lambda: pool, size=10, batch=10, enqueue_timeout=1.0)
    writer = asyncio.create_task(log.run())
    await log.record(_entry(f"{prefix}0", target="bad\x00name", names=["file\x00.json"]))
    await log.close(writer)
    [row] = await _rows(pool, prefix)
    assert row["target"] == "bad\ufffdname" and "file\ufffd.json" in row["detail"]
