"""Shadow schemas: a package's tables built beside the live ones, swapped in whole, checksummed.

A package that owns tables declares them (`OwnedTables`); a rebuild (shared.rebuild) creates a
schema of its own, applies the package's schema.sql there, lets the package's own code fill it,
then `swap` moves the live tables out and the shadow's in, in one transaction. Season
partitions are tables of their own, so they are moved one by one with their parent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from shared.db import SeasonPartitions


@dataclass(frozen=True)
class Checksum:
    """How a table's rows are digested: in `key` order, every column but `skip`, rows matching `where`."""

    key: tuple[str, ...]
    skip: tuple[str, ...] = ()  # columns that say when a row was written, not what it holds
    where: str = "true"


@dataclass(frozen=True)
class OwnedTables:
    """The tables one package owns and migrates (`package`/schema.sql), as a rebuild swaps them."""

    package: str
    swap_lock: int  # held shared by the package's writers (shared.db.share_swap_lock)
    checksums: Mapping[str, Checksum]  # every table, in swap order
    partitioned: tuple[str, ...] = field(default=())  # the season-partitioned ones (SeasonPartitions)
    archived: str | None = None  # the package's table of seasons in cold storage (shared/archive.py)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.checksums)


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def with_search_path(dsn: str, schema: str) -> str:
    """`dsn` with its connections' search_path set to `schema` alone."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def partition_seasons(conn: asyncpg.Connection, schema: str, table: str) -> set[int]:
    """The seasons of `schema`.`table`'s partitions (named `<table>_<season>` by SeasonPartitions)."""
    names = await _partitions(conn, schema, table)
    return {int(n.rsplit("_", 1)[1]) for n in names if n.rsplit("_", 1)[-1].isdigit()}


async def _partitions(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass($1) ORDER BY 1",
        f"{ident(schema)}.{ident(table)}",
    )
    return [r[0] for r in rows]


async def match_partitions(live: asyncpg.Connection, shadow: asyncpg.Connection, owned: OwnedTables,
                           live_schema: str, shadow_schema: str) -> None:  # fmt: skip
    """Give the shadow's partitioned tables every season partition the live ones have.

    A writer remembers which partitions it made; after the swap it must find them there too.
    """
    for table in owned.partitioned:
        seasons = await partition_seasons(live, live_schema, table)
        await SeasonPartitions(table).ensure(shadow, seasons)


async def drop_archived(live: asyncpg.Connection, shadow: asyncpg.Connection, owned: OwnedTables,
                        live_schema: str) -> list[int]:  # fmt: skip
    """Remove from the shadow the seasons the live tables have in cold storage: the topic keeps every
    season, so a replay brings them back, and the swap must not put them beside their archived mark."""
    if owned.archived is None:
        return []
    seasons = sorted(
        r[0] for r in await live.fetch(f"SELECT season FROM {ident(live_schema)}.{ident(owned.archived)}")
    )
    if not seasons:
        return []
    for table in owned.tables:
        if table in owned.partitioned:
            for season in seasons:
                await shadow.execute(f"DROP TABLE IF EXISTS {ident(f'{table}_{season:d}')}")
        elif await shadow.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'season')",
            ident(table),
        ):
            await shadow.execute(f"DELETE FROM {ident(table)} WHERE season = ANY($1::int[])", seasons)
    return seasons


async def swap(conn: asyncpg.Connection, owned: OwnedTables, live: str, shadow: str) -> None:
    """Move the live tables (and their partitions) out and the shadow's in, in one transaction;
    the old ones are dropped. The caller holds the package's swap lock exclusive."""
    retired = f"{shadow}_old"[:63]
    async with conn.transaction():
        # The moves need every table's ACCESS EXCLUSIVE lock: readers finish their statement first.
        await conn.execute("SET LOCAL lock_timeout = '30s'")
        await conn.execute(f"CREATE SCHEMA {ident(retired)}")
        for source, target in ((live, retired), (shadow, live)):
            for table in owned.tables:
                children = await _partitions(conn, source, table)
                await conn.execute(f"ALTER TABLE {ident(source)}.{ident(table)} SET SCHEMA {ident(target)}")
                for child in children:
                    await conn.execute(
                        f"ALTER TABLE {ident(source)}.{ident(child)} SET SCHEMA {ident(target)}"
                    )
        await conn.execute(f"DROP SCHEMA {ident(retired)} CASCADE")


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")


async def text_forms(conn: asyncpg.Connection) -> None:
    """Text forms that do not depend on the session, for the rest of the caller's transaction:
    timestamps in UTC, floats shortest-exact."""
    await conn.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
                       "SET LOCAL extra_float_digits = 1; SET LOCAL IntervalStyle = 'postgres'")  # fmt: skip


async def digest_relation(conn: asyncpg.Connection, relation: str, spec: Checksum) -> tuple[int, str]:
    """(rows, sha256) of `relation` (SQL, quoted, optionally schema-qualified) as `spec` says, in
    the caller's transaction, after `text_forms`. Columns are digested in name order, so two
    tables with the same columns in another order digest alike."""
    columns = await conn.fetch(
        "SELECT attname, atttypid = 'json'::regtype FROM pg_attribute WHERE attrelid = to_regclass($1) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attname",
        relation,
    )
    # json keeps the text it was given: a value written through a jsonb parameter comes back
    # spaced differently from the same value COPY'd. Digested as jsonb, equal values are equal.
    values = [f"{ident(n)}::jsonb" if is_json else ident(n) for n, is_json in columns if n not in spec.skip]
    if not values:
        raise LookupError(f"no table {relation} on the search path")
    sql = (f"SELECT ROW({', '.join(values)})::text FROM {relation} "
           f"WHERE {spec.where} ORDER BY {', '.join(ident(k) for k in spec.key)}")  # fmt: skip
    digest = hashlib.sha256()
    rows = 0
    async for record in conn.cursor(sql, prefetch=2000):
        digest.update(record[0].encode())
        digest.update(b"\n")
        rows += 1
    return rows, digest.hexdigest()


async def digests(conn: asyncpg.Connection, owned: OwnedTables) -> dict[str, tuple[int, str]]:
    """table -> (rows, sha256) of the tables `conn`'s search_path finds, inside the caller's
    transaction (a REPEATABLE READ one digests one moment of every table)."""
    await text_forms(conn)
    return {table: await digest_relation(conn, ident(table), spec) for table, spec in owned.checksums.items()}


def combined(per_table: Mapping[str, tuple[int, str]]) -> str:
    """One digest over every table's (name, rows, digest)."""
    text = "\n".join(f"{t} {n} {d}" for t, (n, d) in sorted(per_table.items()))
    return hashlib.sha256(text.encode()).hexdigest()


async def digest_tables(pool: asyncpg.Pool, owned: OwnedTables) -> dict[str, tuple[int, str]]:
    """`digests` of the pool's tables at one moment."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await digests(conn, owned)
