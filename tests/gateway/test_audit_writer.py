"""The audit writer against the session's PostgreSQL: a full queue drops (counted) after its wait,
records are written in batches and at shutdown, and a record PostgreSQL would refuse is stored cleaned."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.gateway.audit import AuditLog, Entry
from shared.db import migrate
from tests.gateway.conftest import Accounts


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


async def test_an_owning_role_without_superuser_cannot_rewrite_either(database_url: str, unique: str) -> None:
    """The services' role as it would be in production (owns its tables, no superuser): both the
    triggers and the revoked privileges refuse, each on its own."""
    role, password = f"snapline_audit_{unique}", secrets.token_urlsafe(16)
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    pool = None
    try:
        await admin.execute(f"GRANT USAGE, CREATE ON SCHEMA test_{unique} TO {role}")
        url = urlsplit(database_url)
        own = urlunsplit(url._replace(netloc=f"{role}:{password}@{url.hostname}:{url.port}"))
        pool = await asyncpg.create_pool(own, min_size=1, max_size=2)
        await migrate(pool, "services.gateway")
        log = AuditLog(lambda: pool, size=10, batch=10, enqueue_timeout=1.0)
        writer = asyncio.create_task(log.run())
        await log.record(_entry("owned-0"))
        await log.close(writer)
        changes = ("UPDATE audit_log SET status = 500", "DELETE FROM audit_log", "TRUNCATE audit_log")
        for statement in changes:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"append-only|permission denied"):
                await pool.execute(statement)
        # The owner may drop the triggers (docs/audit.md says how to rule that out); the
        # privileges it gave up still refuse.
        await pool.execute("DROP TRIGGER audit_log_no_change ON audit_log")
        await pool.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        for statement in changes:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"permission denied"):
                await pool.execute(statement)
        assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1
        # The hardening docs/audit.md describes: the table given to another role (here the
        # superuser of the test), the services' role keeps INSERT and SELECT. Its migration still
        # runs through, it still writes, and it can no longer drop a trigger or get UPDATE back.
        await admin.execute("ALTER TABLE audit_log OWNER TO CURRENT_USER")
        await admin.execute("ALTER FUNCTION audit_log_refuse_change() OWNER TO CURRENT_USER")
        await admin.execute(f"GRANT INSERT, SELECT ON audit_log TO {role}")
        schema = resources.files("services.gateway").joinpath("schema.sql").read_text()
        await admin.execute(schema)  # the owner's run puts the triggers back
        await pool.execute(schema)  # the services' role's run leaves them to the owner
        writer = asyncio.create_task(log.run())
        await log.record(_entry("owned-1"))
        await log.close(writer)
        assert await pool.fetchval("SELECT count(*) FROM audit_log") == 2
        await pool.execute(f"GRANT UPDATE ON audit_log TO {role}")  # a warning: it holds nothing to grant
        for statement in (*changes, "DROP TRIGGER audit_log_no_change ON audit_log",
                          "ALTER TABLE audit_log DISABLE TRIGGER ALL"):  # fmt: skip
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute(statement)
    finally:
        if pool is not None:
            await pool.close()
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_the_bootstrap_key_is_recorded_as_made_by_the_set_up(
    pool: asyncpg.Pool, session_database_url: str, people: Accounts
) -> None:
    name = people.name("boot")  # removed with the test's other keys
    env = {**os.environ, "DATABASE_URL": session_database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.gateway.bootstrap", name, "--role", "feed", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    key = out.decode().strip()
    key_id = await pool.fetchval(
        "SELECT key_id FROM gateway_keys WHERE name = $1 AND revoked_at IS NULL", name
    )
    row = await pool.fetchrow("SELECT * FROM audit_log WHERE target = $1", key_id)
    assert (row["actor"], row["action"], row["status"]) == ("setup:bootstrap", "admin.key.create", 201)
    assert '"role": "feed"' in row["detail"] and key not in str(dict(row))
