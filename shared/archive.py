"""A service's per-season rows to cold storage and back, on that service's own tables.

Each service that owns per-season tables declares them once (`SeasonOwner`: services/query/archive.py,
services/analytics/archive.py); this module does the work for any of them, as shared/valuing.py
does for EP/WP, so every write stays with the owner's declared tables and the owner's table of
archived seasons. Steps, each on one connection to the owner's database:

1. `export`: in one REPEATABLE READ snapshot, each table's rows of the season are digested
   (shared.shadow's digest: every column, key order, json as jsonb, so "equal checksums" means
   what it means for `snapline rebuild`) and written to Parquet in key order.
2. `verify`: every file is read back into a temporary table shaped like the live one and
   digested the same way; rows and digest must equal the snapshot's. Nothing is dropped before.
3. `drop`: one transaction holding the owner's swap lock exclusive (its writers hold it shared,
   so no batch is half applied): the season's rows are digested again and must still equal the
   files; then its partitions are detached and dropped, its rows deleted from the other tables,
   the season marked archived, and the answer caches' generations of the season raised.
4. `restore`: one transaction under the same lock: the partitions created again, the files
   COPY'd back, the digests checked against the manifest (a mismatch rolls everything back),
   the mark removed, the generations raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Gauge

from shared import answers
from shared.coldstore import ColdStore, TableFile, arrow_schema, record_batch, records
from shared.db import PARTITION_LOCK
from shared.logging import get_logger
from shared.shadow import Checksum, digest_relation, ident, text_forms

log = get_logger(__name__)
ROWS = Counter("snapline_archive_rows_total", "Rows archived or restored", ["owner", "table", "action"])
BYTES = Counter("snapline_archive_bytes_total", "Parquet bytes written or read back", ["owner", "action"])
SECONDS = Gauge("snapline_archive_seconds", "Duration of the last archive step", ["owner", "step"])
Digests = dict[str, tuple[int, str]]


class ArchiveError(Exception):
    """The season cannot be archived or restored as asked; what was done so far was undone."""


@dataclass(frozen=True)
class SeasonOwner:
    """A service's per-season tables, each with a `season` column, as the archive moves them."""

    name: str  # the service
    package: str  # its schema.sql package (the schema version a manifest records)
    swap_lock: int  # held shared by its writers for each transaction (shared.db.share_swap_lock)
    keys: Mapping[str, tuple[str, ...]]  # table -> key columns (the digest's and the files' row order)
    partitioned: tuple[str, ...]  # of them, the season-partitioned ones (<table>_<season>)
    games: str  # its games table: the game ids kept in the mark, so a game's reads can answer 410
    marks: str  # its table of archived seasons
    generations: str  # its answer cache's generations (shared/answers.py)
    tag_patterns: tuple[str, ...] = ()  # LIKE patterns of further tags of a season, `{season}` filled in

    def tags(self, season: int, game_ids: list[str]) -> list[str]:
        return ["all", f"season:{season}", *(f"game:{g}" for g in game_ids)]


def _checksum(owner: SeasonOwner, table: str, season: int, skip: tuple[str, ...] = ()) -> Checksum:
    return Checksum(key=owner.keys[table], skip=skip, where=f"season = {season:d}")


async def season_digests(
    conn: asyncpg.Connection, owner: SeasonOwner, season: int, schema: str = "",
    files: Mapping[str, TableFile] | None = None,
) -> Digests:  # fmt: skip
    """Each table's (rows, sha256) of the season, in the caller's transaction; `schema` qualifies the
    tables (`pg_temp`: the copies `verify` loads). With `files`, over the columns each file holds:
    a column added to a table after its season was archived is not in the archive's checksum."""
    await text_forms(conn)
    prefix = f"{ident(schema)}." if schema else ""
    out = {}
    for table in owner.keys:
        relation = prefix + ident(table)
        skip: tuple[str, ...] = ()
        if files is not None and table in files:
            skip = tuple(n for n, _ in await columns(conn, relation) if n not in files[table].columns)
        out[table] = await digest_relation(conn, relation, _checksum(owner, table, season, skip))
    return out


async def columns(conn: asyncpg.Connection, relation: str) -> list[tuple[str, str]]:
    """(column, type) of a relation (SQL, quoted, optionally schema-qualified), in its column order."""
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        relation,
    )
    return [(r[0], r[1]) for r in rows]


async def export(
    conn: asyncpg.Connection, owner: SeasonOwner, season: int, store: ColdStore, batch_rows: int
) -> dict[str, TableFile]:
    """Write the season's rows of every table to Parquet from one snapshot; the files' entries."""
    started = time.monotonic()
    out: dict[str, TableFile] = {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        digests = await season_digests(conn, owner, season)
        for table in owner.keys:
            cols = await columns(conn, ident(table))
            name = f"{table}.parquet"
            rows = await _write(conn, store, season, table, cols, owner.keys[table], batch_rows)
            if rows != digests[table][0]:
                raise ArchiveError(
                    f"{table}: wrote {rows} rows of season {season}, the snapshot has {digests[table][0]}"
                )
            size = store.size(season, name)
            out[table] = TableFile(owner=owner.name, file=name, rows=rows, sha256=digests[table][1], bytes=size,
                                   columns=[n for n, _ in cols])  # fmt: skip
            ROWS.labels(owner.name, table, "archive").inc(rows)
            BYTES.labels(owner.name, "archive").inc(size)
    SECONDS.labels(owner.name, "export").set(time.monotonic() - started)
    log.info("archive_exported", owner=owner.name, season=season, where=store.where(season),
             rows={t: f.rows for t, f in out.items()}, bytes=sum(f.bytes for f in out.values()),
             seconds=round(time.monotonic() - started, 2))  # fmt: skip
    return out


async def _write(
    conn: asyncpg.Connection, store: ColdStore, season: int, table: str, cols: list[tuple[str, str]],
    key: tuple[str, ...], batch_rows: int,
) -> int:  # fmt: skip
    """The season's rows of `table` in key order to `<table>.parquet`, a row group per `batch_rows`."""
    schema = arrow_schema(cols)
    sql = (f"SELECT {', '.join(ident(n) for n, _ in cols)} FROM {ident(table)} WHERE season = $1 "
           f"ORDER BY {', '.join(ident(k) for k in key)}")  # fmt: skip
    stream, writer = store.writer(season, f"{table}.parquet", schema)
    rows, pending = 0, []
    try:
        # pyarrow writes block the loop; the CLI runs nothing else meanwhile.
        async for record in conn.cursor(sql, season, prefetch=min(batch_rows, 5000)):
            pending.append(record)
            if len(pending) >= batch_rows:
                writer.write_batch(record_batch(schema, pending))
                rows, pending = rows + len(pending), []
        if pending or not rows:  # an empty season still gets a file with the table's schema
            writer.write_batch(record_batch(schema, pending))
            rows += len(pending)
    finally:
        writer.close()
        stream.close()
    return rows


async def _load(
    conn: asyncpg.Connection, store: ColdStore, season: int, entry: TableFile, table: str, schema: str,
    batch_rows: int,
) -> int:  # fmt: skip
    """COPY a file's rows into `table`; the file is read and converted in a thread, so that a service
    restoring on demand (shared/ondemand.py) keeps answering meanwhile."""
    rows = 0
    batches = store.batches(season, entry.file, batch_rows)
    try:
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            if batch.schema.names != entry.columns:
                raise ArchiveError(f"{store.where(season)}{entry.file} has columns {batch.schema.names}, "
                                   f"the manifest says {entry.columns}")  # fmt: skip
            converted = await asyncio.to_thread(records, batch)
            await conn.copy_records_to_table(
                table, records=converted, columns=entry.columns, schema_name=schema
            )
            rows += batch.num_rows
    finally:
        batches.close()  # the file, also when a batch failed
    return rows


def _compare(owner: SeasonOwner, files: Mapping[str, TableFile], found: Digests, what: str) -> None:
    for table, entry in files.items():
        if found.get(table) != (entry.rows, entry.sha256):
            rows, digest = found.get(table, (0, "none"))
            raise ArchiveError(f"{owner.name}.{table}: {what} has {rows} rows with SHA-256 {digest[:16]}..., "
                               f"the archive {entry.rows} rows with {entry.sha256[:16]}...")  # fmt: skip


async def verify(conn: asyncpg.Connection, owner: SeasonOwner, season: int, store: ColdStore,
                 files: Mapping[str, TableFile], batch_rows: int) -> None:  # fmt: skip
    """Read every file back into a temporary copy of its table; its digest must be the file's entry's."""
    started = time.monotonic()
    tx = conn.transaction()
    await tx.start()
    try:
        for table, entry in files.items():
            await conn.execute(f"CREATE TEMPORARY TABLE {ident(table)} (LIKE {ident(table)}) ON COMMIT DROP")
            await _load(conn, store, season, entry, table, "pg_temp", batch_rows)
            BYTES.labels(owner.name, "verify").inc(entry.bytes)
        _compare(
            owner, files, await season_digests(conn, owner, season, "pg_temp", files), "the file read back"
        )
    finally:
        await tx.rollback()  # the temporary copies go with it
    SECONDS.labels(owner.name, "verify").set(time.monotonic() - started)
    log.info(
        "archive_verified", owner=owner.name, season=season, seconds=round(time.monotonic() - started, 2)
    )


async def _bump(conn: asyncpg.Connection, owner: SeasonOwner, season: int, game_ids: list[str]) -> None:
    """Raise the generations of every answer that read the season (never stale either way)."""
    await answers.bump(conn, owner.generations, owner.tags(season, game_ids))
    for pattern in owner.tag_patterns:
        await conn.execute(f"UPDATE {owner.generations} SET gen = gen + 1 WHERE tag LIKE $1",
                           pattern.format(season=season))  # fmt: skip


async def _exclusive(conn: asyncpg.Connection, owner: SeasonOwner) -> None:
    # Readers finish their statement before the partition DDL; writers' batches commit first.
    await conn.execute("SET LOCAL lock_timeout = '30s'")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", owner.swap_lock)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)


async def drop(conn: asyncpg.Connection, owner: SeasonOwner, season: int, files: Mapping[str, TableFile],
               location: str) -> None:  # fmt: skip
    """Drop the season from the owner's tables and mark it archived, in one transaction, if its rows
    are still those the files hold."""
    started = time.monotonic()
    async with conn.transaction():
        await _exclusive(conn, owner)
        _compare(owner, files, await season_digests(conn, owner, season, files=files), "the live table now")
        game_ids = [r[0] for r in await conn.fetch(
            f"SELECT game_id FROM {ident(owner.games)} WHERE season = $1 ORDER BY 1", season)]  # fmt: skip
        for table in owner.keys:
            if table not in owner.partitioned:
                await conn.execute(f"DELETE FROM {ident(table)} WHERE season = $1", season)
        await conn.execute(f"INSERT INTO {ident(owner.marks)} (season, location, game_ids) VALUES ($1, $2, $3)",
                           season, location, game_ids)  # fmt: skip
        await _bump(conn, owner, season, game_ids)
        # Last: DETACH holds the parent's ACCESS EXCLUSIVE lock until commit, which reads of every
        # season wait for (CONCURRENTLY cannot run inside a transaction).
        for table in owner.partitioned:
            part = ident(f"{table}_{season:d}")
            if await conn.fetchval("SELECT to_regclass($1)", part) is not None:
                await conn.execute(f"ALTER TABLE {ident(table)} DETACH PARTITION {part}")
                await conn.execute(f"DROP TABLE {part}")
    SECONDS.labels(owner.name, "drop").set(time.monotonic() - started)
    log.info("archive_dropped", owner=owner.name, season=season, games=len(game_ids),
             seconds=round(time.monotonic() - started, 2))  # fmt: skip


async def restore(conn: asyncpg.Connection, owner: SeasonOwner, season: int, store: ColdStore,
                  files: Mapping[str, TableFile], batch_rows: int) -> None:  # fmt: skip
    """Load the season back from its files and clear the mark, in one transaction; the digests must
    equal the manifest's or nothing is restored."""
    started = time.monotonic()
    missing = sorted(set(owner.keys) - set(files))
    if missing:
        raise ArchiveError(
            f"the archive of season {season} has no file for {owner.name}'s {', '.join(missing)}"
        )
    async with conn.transaction():
        await _exclusive(conn, owner)
        game_ids: list[str] = await conn.fetchval(
            f"DELETE FROM {ident(owner.marks)} WHERE season = $1 RETURNING game_ids", season
        )
        if game_ids is None:
            raise ArchiveError(f"season {season} is not archived in {owner.name}'s tables")
        for table in owner.keys:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {ident(table)} WHERE season = $1)", season):
                raise ArchiveError(
                    f"{owner.name}.{table} holds rows of season {season} again (events of it applied after it "
                    "was archived): nothing restored; see docs/archive.md"
                )
            target = f"{table}_{season:d}" if table in owner.partitioned else table
            if target != table:
                await _new_partition(conn, table, target)
            rows = await _load(conn, store, season, files[table], target, "", batch_rows)
            if target != table:
                await _attach(conn, table, target, season)
            ROWS.labels(owner.name, table, "restore").inc(rows)
            BYTES.labels(owner.name, "restore").inc(files[table].bytes)
        _compare(owner, files, await season_digests(conn, owner, season, files=files), "the restored table")
        await _bump(conn, owner, season, game_ids)
    SECONDS.labels(owner.name, "restore").set(time.monotonic() - started)
    log.info("archive_restored", owner=owner.name, season=season,
             rows={t: f.rows for t, f in files.items()}, seconds=round(time.monotonic() - started, 2))  # fmt: skip


async def _new_partition(conn: asyncpg.Connection, table: str, part: str) -> None:
    """A table to load the season into before it becomes a partition (an empty one left behind goes)."""
    if await conn.fetchval("SELECT to_regclass($1)", ident(part)) is not None:
        attached = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2))",
            ident(part), ident(table),
        )  # fmt: skip
        if not attached:  # never drop a table of someone else's making
            raise ArchiveError(
                f"a table {part} exists outside {table}: nothing restored; rename or drop it first"
            )
        await conn.execute(f"DROP TABLE {ident(part)}")  # attached and empty: the caller found no rows
    await conn.execute(
        f"CREATE TABLE {ident(part)} (LIKE {ident(table)} INCLUDING DEFAULTS INCLUDING STORAGE)"
    )


async def _attach(conn: asyncpg.Connection, table: str, part: str, season: int) -> None:
    """Attach the loaded table as the season's partition. ATTACH locks the parent SHARE UPDATE EXCLUSIVE,
    which reads pass (CREATE ... PARTITION OF would hold ACCESS EXCLUSIVE through the whole load);
    the CHECK spares it the scan that proves every row belongs, and the indexes are built once, here."""
    check = ident(f"{part}_season")
    await conn.execute(f"ALTER TABLE {ident(part)} ADD CONSTRAINT {check} "
                       f"CHECK (season IS NOT NULL AND season >= {season:d} AND season < {season + 1:d})")  # fmt: skip
    await conn.execute(f"ALTER TABLE {ident(table)} ATTACH PARTITION {ident(part)} "
                       f"FOR VALUES FROM ({season:d}) TO ({season + 1:d})")  # fmt: skip
    await conn.execute(f"ALTER TABLE {ident(part)} DROP CONSTRAINT {check}")


async def seasons(conn: asyncpg.Connection, owner: SeasonOwner) -> tuple[set[int], dict[int, str]]:
    """The owner's active seasons (its games') and its archived ones (season -> location)."""
    active = {r[0] for r in await conn.fetch(f"SELECT DISTINCT season FROM {ident(owner.games)}")}
    marked = {r[0]: r[1] for r in await conn.fetch(f"SELECT season, location FROM {ident(owner.marks)}")}
    return active - set(marked), marked
