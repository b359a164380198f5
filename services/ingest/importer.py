"""Runs import jobs: claims them in PostgreSQL, converts files in worker processes, publishes them.

Jobs are claimed whole (`FOR UPDATE SKIP LOCKED`), so ingest instances share the queue; a claim is
kept alive by a heartbeat and taken over by another instance when the heartbeat goes stale. A file
is finished in one statement after Kafka acknowledged its events; one that was published but not
finished when an instance died is published again, and the dedupe turns it into duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Gauge

from services.ingest import convert, unpack
from services.ingest.jobs import Claimed, FileResult, JobStore, PendingFile
from services.ingest.options import ImportOptions
from services.ingest.publisher import Publisher
from services.ingest.uploads import Spooled, discard
from shared.events import PlayRecorded
from shared.kafka import TRANSIENT, dependency_of
from shared.logging import get_logger

log = get_logger(__name__)
JOBS = Counter("snapline_import_jobs_total", "Import jobs by the status they reached", ["status"])
FILES = Counter("snapline_import_files_total", "Import files finished, by outcome", ["outcome"])
T = TypeVar("T")
RETRIES = Counter(
    "snapline_import_file_retries_total",
    "Attempts to import a file that failed on an unavailable dependency (retried without limit)",
    ["dependency"],
)
PENDING_FILES = Gauge("snapline_import_pending_files", "Files of open import jobs not imported yet")


class Importer:
    """Claims import jobs and imports their files; one job at a time per instance."""

    def __init__(self, store: JobStore, publisher: Publisher, options: ImportOptions) -> None:
        self.store = store
        self.options = options
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._publisher = publisher
        self._wake = asyncio.Event()
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"Importer(owner={self.owner!r}, spool={str(self.options.spool_dir)!r})"

    def new_job(self) -> tuple[str, Path]:
        """A fresh job id and its spool directory."""
        job_id = uuid.uuid4().hex
        return job_id, self.options.spool_dir / job_id

    async def submit(self, job_id: str, fmt: str, directory: Path, items: list[Spooled], limit: int) -> int:
        """Unpack the spooled uploads and queue the job; returns how many files it has."""
        max_bytes = limit * self.options.expand_factor
        entries = await asyncio.to_thread(unpack.expand, items, directory, max_bytes)
        await self.store.create(job_id, fmt, str(directory), entries)
        JOBS.labels("queued").inc()
        log.info(
            "import_job_queued", job_id=job_id, files=len(entries), failed=sum(1 for e in entries if e.error)
        )
        self._wake.set()
        return len(entries)

    async def run(self) -> None:
        """Claim and run jobs until cancelled (the service's background task)."""
        while True:
            self._wake.clear()
            job = await self.store.claim(self.owner, self.options.stale_after)
            if job is not None:
                await self._run(job)
                continue
            PENDING_FILES.set(await self.store.pending_files())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_interval)

    async def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)

    async def _run(self, job: Claimed) -> None:
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job.id, lost))
        try:
            try:
                await self._in_worker(convert.check, self.options.data_wheel)
            except convert.ReferenceMissing as exc:
                await self.store.fail(job.id, self.owner, self.options.data_wheel, str(exc))
                await self._ended(job, "failed", {"error": str(exc)})
                return
            files = iter(await self.store.pending(job.id))
            async with asyncio.TaskGroup() as group:  # one failing worker stops its siblings
                for _ in range(self.options.concurrency):
                    group.create_task(self._work(job, files, lost))
            summary = None if lost.is_set() else await self.store.finish(job.id, self.owner)
            if summary is not None:
                await self._ended(job, summary["status"], summary)
            elif not lost.is_set():
                await self.store.release(job.id, self.owner)
        except BaseException:
            # Hand the job back now rather than after `stale_after`; it resumes from its pending files.
            with contextlib.suppress(Exception):
                await self.store.release(job.id, self.owner)
            raise
        finally:
            heartbeat.cancel()

    async def _ended(self, job: Claimed, status: str, summary: dict[str, object]) -> None:
        JOBS.labels(status).inc()
        await discard(Path(job.spool_path))
        keep = ("files_total", "files_done", "files_failed", "events_total", "events_accepted", "duplicates",
                "rate", "error")  # fmt: skip
        fields = {k: v for k, v in summary.items() if k in keep}
        log.info("import_job_finished", job_id=job.id, status=status, **fields)

    async def _work(self, job: Claimed, files: Iterator[PendingFile], lost: asyncio.Event) -> None:
        for file in files:  # the iterator is shared: each file goes to one of the workers
            if lost.is_set():
                return
            await self._import_file(job, file)

    async def _import_file(self, job: Claimed, file: PendingFile) -> None:
        started = time.perf_counter()
        try:
            converted = await self._in_worker(convert.convert, file.name, file.path, self.options.data_wheel)
        except (convert.ReferenceMissing, BrokenProcessPool) as exc:
            converted = f"{file.name}: could not be converted ({type(exc).__name__}: {exc})"
        if isinstance(converted, str):
            result = FileResult(error=converted)
            await self._retrying(job, file, lambda: self._record(job, file, result))
        else:
            result = await self._retrying(job, file, lambda: self._deliver(job, file, converted))
        FILES.labels("failed" if result.error else "imported").inc()
        log.info("import_file", job_id=job.id, file=file.name, status="failed" if result.error else "done",
                 events=result.events, accepted=result.accepted, duplicates=result.duplicates,
                 error=result.error, ms=round((time.perf_counter() - started) * 1000, 1))  # fmt: skip

    async def _deliver(self, job: Claimed, file: PendingFile, events: list[PlayRecorded]) -> FileResult:
        outcome = await self._publisher.publish(list(events), live=False)  # past games: history
        result = FileResult(len(events), outcome.accepted, outcome.duplicates + outcome.superseded)
        return await self._record(job, file, result)

    async def _record(self, job: Claimed, file: PendingFile, result: FileResult) -> FileResult:
        await self.store.finish_file(job.id, file.seq, result)
        return result

    async def _retrying(
        self, job: Claimed, file: PendingFile, step: Callable[[], Awaitable[FileResult]]
    ) -> FileResult:
        """Run `step` until Kafka, Redis and PostgreSQL let it through, with capped backoff."""
        delay = 0.5
        while True:
            task = asyncio.ensure_future(step())
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                # Let a started publish-and-record finish: Redis claims of records Kafka never got
                # would make the resumed file's plays look like duplicates and lose them.
                with contextlib.suppress(Exception):
                    await task
                raise
            except TRANSIENT as exc:
                RETRIES.labels(dependency_of(exc)).inc()
                log.warning("import_file_retry", job_id=job.id, file=file.name, retry_in=delay,
                            dependency=dependency_of(exc), error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.max_retry_delay)

    async def _heartbeat(self, job_id: str, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_interval)
            try:
                alive = await self.store.heartbeat(job_id, self.owner)
            except TRANSIENT as exc:
                log.warning("import_heartbeat_failed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
                continue
            if not alive:
                log.warning("import_job_taken_over", job_id=job_id, owner=self.owner)
                lost.set()
                return

    async def _in_worker(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn` in a worker process (the parse is CPU-bound); a dead worker gets one retry."""
        for attempt in (1, 2):
            if self._pool is None:
                # forkserver: forking this multi-threaded process directly could copy a held lock.
                # Preloading the converter (not __main__) gives workers a warm, side-effect-free start.
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["services.ingest.convert"])
                self._pool = ProcessPoolExecutor(self.options.workers, mp_context=context)
            pool = self._pool
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
