"""Season archive benchmark: one whole real season archived to Parquet and restored, timed.

Loads every game of a season from the corpus wheel (all season types) through the query
projector and the analytics store into a schema of its own in DATABASE_URL's database, archives
the season to a temporary directory (`snapline archive`'s code: export, read back, drop), restores
it, and checks that every table's rows and SHA-256 are the same as before. Prints a line per table
(rows, Parquet bytes) and the seconds of each step, beside the raw baseline measured in the same
run: the same rows COPY'd out of PostgreSQL in its binary format (bytes and seconds), which is the
floor of reading them out. The schema and the directory are removed at the end.

    python bench/archive.py [--season 2015]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import shutil
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import WHEEL
from services.analytics.archive import OWNER as ANALYTICS
from services.analytics.store import AggregateStore
from services.ingest import gamecenter as gc
from services.query.archive import OWNER as QUERY
from services.query.projection import Projector
from shared.archive import season_digests
from shared.config import Settings
from shared.db import postgres_dependency
from shared.lifecycle import Target, archive_season, restore_season
from shared.shadow import with_search_path


async def _digests(dsn: str, season: int) -> dict[str, tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, tuple[int, str]] = {}
        for owner in (QUERY, ANALYTICS):
            async with conn.transaction():
                out.update(await season_digests(conn, owner, season))
        return out
    finally:
        await conn.close()


async def _raw_copy(dsn: str, season: int) -> dict[str, tuple[int, float]]:
    """table -> (bytes, seconds) of `COPY (SELECT * ... WHERE season = $1) TO STDOUT (FORMAT binary)`."""
    conn = await asyncpg.connect(dsn)
    out = {}
    try:
        for owner in (QUERY, ANALYTICS):
            for table in owner.keys:
                sink = io.BytesIO()
                started = time.perf_counter()
                await conn.copy_from_query(f"SELECT * FROM {table} WHERE season = $1", season, output=sink,
                                           format="binary")  # fmt: skip
                out[table] = (sink.tell(), time.perf_counter() - started)
        return out
    finally:
        await conn.close()


async def run(season: int) -> None:
    base = Settings.from_env("bench")
    schema = f"bench_archive_{uuid.uuid4().hex[:8]}"
    cold = Path(tempfile.mkdtemp(prefix="snapline-archive-"))
    admin = await asyncpg.connect(base.database_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    dsn = with_search_path(base.database_url, schema)
    settings = dataclasses.replace(base, database_url=dsn, archive_url=str(cold), database_replica_url=None)
    deps = [postgres_dependency(settings, migrations=m) for m in ("services.query", "services.analytics")]
    try:
        for dep in deps:
            dep.start()
            await asyncio.wait_for(dep.wait(), 60)
        projector, store = Projector(deps[0]), AggregateStore(deps[1])
        started = time.monotonic()
        with zipfile.ZipFile(WHEEL) as wheel:
            schedule = gc.load_schedule(wheel.read("nflgame/schedule.json"))
            players = gc.load_players(wheel.read("nflgame/players.json"))
            names = set(wheel.namelist())
            ids = sorted(g for g, s in schedule.items() if s.season == season
                         and f"nflgame/gamecenter-json/{g}.json.gz" in names)  # fmt: skip
            plays = 0
            for g in ids:
                path = f"nflgame/gamecenter-json/{g}.json.gz"
                events = gc.game_events(f"{g}.json.gz", wheel.read(path), schedule, players)
                await projector.apply(events)
                await store.apply(events)
                plays += len(events)
        print(
            f"season {season}: {len(ids)} games, {plays} plays loaded in {time.monotonic() - started:.1f} s"
        )
        before = await _digests(dsn, season)
        raw = await _raw_copy(dsn, season)
        targets = [Target(QUERY, dsn), Target(ANALYTICS, dsn)]
        archived = await archive_season(settings, targets, season, force=True)
        restored = await restore_season(settings, targets, season)
        after = await _digests(dsn, season)
        for table, f in archived.tables.items():
            print(
                f"{table:<24} {f.rows:>9} rows {f.bytes / 1e6:>8.2f} MB Parquet   raw COPY {raw[table][0] / 1e6:>7.2f} MB"
            )
        total = sum(f.bytes for f in archived.tables.values())
        print(f"raw baseline: COPY of the same rows out, binary: {sum(b for b, _ in raw.values()) / 1e6:.1f} MB "
              f"in {sum(t for _, t in raw.values()):.1f} s")  # fmt: skip
        print(f"archive (export, read back, drop) {archived.seconds:.1f} s; restore {restored.seconds:.1f} s; "
              f"{total / 1e6:.1f} MB of Parquet; checksums {'equal' if after == before else 'DIFFERENT'} "
              f"({archived.checksum[:16]})")  # fmt: skip
    finally:
        for dep in deps:
            await dep.stop()
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
        shutil.rmtree(cold, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--season", type=int, default=2015)
    asyncio.run(run(parser.parse_args().season))


if __name__ == "__main__":
    main()
