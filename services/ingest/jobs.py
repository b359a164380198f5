"""Import jobs and their files in PostgreSQL: created on upload, claimed, advanced file by file.

Every change is one statement, so a crash leaves each file either pending or finished with its
counters added to the job's, never half of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from services.ingest.unpack import Entry
from shared.db import Pools
from shared.deps import Dependency

FINAL = frozenset({"succeeded", "partial", "failed"})
_CLAIM = """
UPDATE import_jobs SET status = 'running', owner = $1, heartbeat = now(),
       started_at = coalesce(started_at, now())
WHERE id = (SELECT id FROM import_jobs
            WHERE status = 'queued'
               OR (status = 'running' AND heartbeat < now() - make_interval(secs => $2))
            ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, spool_path"""
_FINISH_FILE = """
WITH f AS (
  UPDATE import_files SET status = $3, events = $4, accepted = $5, duplicates = $6, error = $7,
         finished_at = now()
  WHERE job_id = $1 AND seq = $2 AND status = 'pending' RETURNING name)
UPDATE import_jobs j SET files_done = files_done + 1, files_failed = files_failed + ($3 = 'failed')::int,
       events_total = events_total + $4, events_accepted = events_accepted + $5,
       duplicates = j.duplicates + $6,
       errors = CASE WHEN $7::text IS NULL THEN errors
                     ELSE errors || jsonb_build_array(jsonb_build_object('file', f.name, 'error', $7::text)) END
FROM f WHERE j.id = $1"""
_FINISH = """
UPDATE import_jobs SET finished_at = now(), owner = NULL, heartbeat = NULL,
       status = CASE WHEN files_done = files_failed THEN 'failed'
                     WHEN files_failed > 0 THEN 'partial' ELSE 'succeeded' END
WHERE id = $1 AND owner = $2 AND status = 'running'
  AND NOT EXISTS (SELECT 1 FROM import_files WHERE job_id = $1 AND status = 'pending')
RETURNING *"""
_VIEW = """SELECT id, status, format, files_total, files_done, files_failed, events_total, events_accepted,
       duplicates, errors::text AS errors, created_at, started_at, finished_at FROM import_jobs"""


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    spool_path: str


@dataclass(frozen=True, slots=True)
class PendingFile:
    seq: int
    name: str
    path: str | None


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file came to: counts when imported, the reason when it failed."""

    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    error: str | None = None


class JobStore:
    """Import jobs and files in the ingest service's PostgreSQL tables."""

    def __init__(self, postgres: Dependency[Pools]) -> None:
        self._postgres = postgres

    def __repr__(self) -> str:
        return f"JobStore({self._postgres!r})"

    @property
    def pool(self) -> asyncpg.Pool:
        """The primary pool; Unavailable (503) until PostgreSQL is connected."""
        return self._postgres.get().primary

    def require(self) -> None:
        """Raise Unavailable (503) unless PostgreSQL is connected."""
        self._postgres.get()

    async def create(self, job_id: str, fmt: str, spool: str, entries: list[Entry]) -> None:
        """Record a queued job and its files; entries with an error are failed from the start."""
        failed = [e for e in entries if e.error]
        errors = msgspec.json.encode([{"file": e.name, "error": e.error} for e in failed]).decode()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO import_jobs (id, format, spool_path, files_total, files_done, files_failed,"
                " errors) VALUES ($1, $2, $3, $4, $5, $5, $6::jsonb)",
                job_id, fmt, spool, len(entries), len(failed), errors,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO import_files (job_id, seq, name, path, status, error, finished_at)"
                " SELECT $1, s, n, p, CASE WHEN e IS NULL THEN 'pending' ELSE 'failed' END, e,"
                " CASE WHEN e IS NULL THEN NULL ELSE now() END"
                " FROM unnest($2::int[], $3::text[], $4::text[], $5::text[]) AS t(s, n, p, e)",
                job_id, list(range(len(entries))), [e.name for e in entries], [e.path for e in entries],
                [e.error for e in entries],
            )  # fmt: skip

    async def claim(self, owner: str, stale_after: float) -> Claimed | None:
        """Take the oldest queued job, or a running one whose owner stopped beating."""
        row = await self.pool.fetchrow(_CLAIM, owner, stale_after)
        return Claimed(row["id"], row["spool_path"]) if row else None

    async def pending(self, job_id: str) -> list[PendingFile]:
        rows = await self.pool.fetch(
            "SELECT seq, name, path FROM import_files WHERE job_id = $1 AND status = 'pending' ORDER BY seq",
            job_id,
        )
        return [PendingFile(r["seq"], r["name"], r["path"]) for r in rows]

    async def heartbeat(self, job_id: str, owner: str) -> bool:
        """Renew the claim; False when another instance has taken the job over."""
        status = await self.pool.execute(
            "UPDATE import_jobs SET heartbeat = now() WHERE id = $1 AND owner = $2 AND status = 'running'",
            job_id, owner,
        )  # fmt: skip
        return bool(status == "UPDATE 1")

    async def finish_file(self, job_id: str, seq: int, result: FileResult) -> bool:
        """Mark a file done or failed and add its counts to the job, once (False if already)."""
        status = "failed" if result.error else "done"
        tag = await self.pool.execute(_FINISH_FILE, job_id, seq, status, result.events, result.accepted,
                                      result.duplicates, result.error)  # fmt: skip
        return bool(tag == "UPDATE 1")

    async def finish(self, job_id: str, owner: str) -> dict[str, Any] | None:
        """Close a job whose files are all finished; None if it is not ours or not finished."""
        row = await self.pool.fetchrow(_FINISH, job_id, owner)
        return view(row) if row else None

    async def fail(self, job_id: str, owner: str, file: str, error: str) -> None:
        """Fail a whole job for a reason that no file of it can overcome."""
        await self.pool.execute(
            "UPDATE import_jobs SET status = 'failed', finished_at = now(), owner = NULL, heartbeat = NULL,"
            " errors = errors || jsonb_build_array(jsonb_build_object('file', $3::text, 'error', $4::text))"
            " WHERE id = $1 AND owner = $2 AND status = 'running'",
            job_id, owner, file, error,
        )  # fmt: skip

    async def release(self, job_id: str, owner: str) -> None:
        """Hand a job back to the queue (shutdown), so any instance resumes it at once."""
        await self.pool.execute(
            "UPDATE import_jobs SET status = 'queued', owner = NULL, heartbeat = NULL"
            " WHERE id = $1 AND owner = $2 AND status = 'running'",
            job_id, owner,
        )  # fmt: skip

    async def pending_files(self) -> int:
        """Files of open jobs not imported yet, over every instance."""
        return int(await self.pool.fetchval(
            "SELECT count(*) FROM import_files f JOIN import_jobs j ON j.id = f.job_id"
            " WHERE f.status = 'pending' AND j.status IN ('queued', 'running')"
        ))  # fmt: skip

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as `GET /v1/imports/{job_id}` shows it."""
        row = await self.pool.fetchrow(f"{_VIEW} WHERE id = $1", job_id)
        return view(row) if row else None


def view(row: asyncpg.Record) -> dict[str, Any]:
    """A job row in the API's shape, with its rate in events per second."""
    started, finished = row["started_at"], row["finished_at"]
    elapsed = ((finished or datetime.now(UTC)) - started).total_seconds() if started else 0.0
    raw_errors = row["errors"]
    errors = msgspec.json.decode(raw_errors) if isinstance(raw_errors, str) else raw_errors
    return {
        "job_id": row["id"], "status": row["status"], "format": row["format"],
        "files_total": row["files_total"], "files_done": row["files_done"],
        "files_failed": row["files_failed"], "events_total": row["events_total"],
        "events_accepted": row["events_accepted"], "duplicates": row["duplicates"],
        "errors": sorted(errors, key=lambda e: (e["file"], e["error"])),
        "rate": round(row["events_total"] / elapsed, 1) if elapsed > 0 else 0.0,
        "created_at": row["created_at"], "started_at": started, "finished_at": finished,
    }  # fmt: skip
