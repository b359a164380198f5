"""asyncpg pools (primary, optional read replica) and schema migrations."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar

import asyncpg
from prometheus_client import Counter, Gauge

from shared.config import Settings
from shared.deps import Dependency
from shared.logging import get_logger

log = get_logger(__name__)
PG_POOL = Gauge(
    "snapline_postgres_pool_connections",
    "PostgreSQL pool connections: open, idle, limit",
    ["service", "pool", "state"],
)


REPLICA_FALLBACKS = Counter(
    "snapline_postgres_replica_fallbacks_total",
    "Reads sent to the primary because the read replica failed them (connection refused, lost, shutting down)",
    ["service"],
)
# A replica that failed a read is left alone this long: reads go to the primary meanwhile, and
# the first read after it tries the replica again.
REPLICA_RETRY_SECONDS = 5.0
# What a replica that is down, restarting or unreachable raises; a query's own error is not here.
REPLICA_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up (57P01-57P03)
    asyncpg.exceptions.SerializationError,  # a standby cancelling a read that conflicts with recovery
)
T = TypeVar("T")


class Pools:
    """The primary pool for writes and the replica pool for reads (the primary when none).

    Reads through `read` go to the replica while it answers, and to the primary when it fails
    them: a stopped or restarting replica costs no read, only freshness it never promised.
    """

    def __init__(self, primary: asyncpg.Pool, replica: asyncpg.Pool | None = None, service: str = "") -> None:
        self.primary = primary
        self.replica = replica or primary
        self._service = service
        self._replica_down_until = 0.0

    def __repr__(self) -> str:
        return (
            f"Pools(primary={self.primary.get_size()}, separate_replica={self.replica is not self.primary})"
        )

    @property
    def reader(self) -> asyncpg.Pool:
        """The pool reads go to now: the replica, unless it failed a read in the last few seconds."""
        if self.replica is not self.primary and time.monotonic() < self._replica_down_until:
            return self.primary
        return self.replica

    async def read(self, run: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """`run(pool)` on the reader; again on the primary if the replica fails it."""
        pool = self.reader
        if pool is self.primary:
            return await run(pool)
        try:
            return await run(pool)
        except REPLICA_DOWN as exc:
            self._replica_down_until = time.monotonic() + REPLICA_RETRY_SECONDS
            REPLICA_FALLBACKS.labels(self._service).inc()
            log.warning(
                "replica_read_failed", error=f"{type(exc).__name__}: {exc}", retry_in=REPLICA_RETRY_SECONDS
            )
            return await run(self.primary)


async def _pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=5, command_timeout=60)
    assert pool is not None
    return pool


async def open_pools(settings: Settings, min_size: int = 1, max_size: int = 10) -> Pools:
    # DATABASE_POOL_MAX overrides the service's own default (what its handlers need at once).
    max_size = settings.database_pool_max or max_size
    primary = await _pool(settings.database_url, min_size, max_size)
    replica = None
    if settings.database_replica_url:
        try:
            # No connection at start: a replica that is down then (or later) only sends reads to
            # the primary (Pools.read); the service does not wait for it.
            replica = await _pool(settings.database_replica_url, 0, max_size)
        except Exception:
            await primary.close()
            raise
    for name, pool in (("primary", primary), ("replica", replica or primary)):
        PG_POOL.labels(settings.service, name, "limit").set(max_size)
        PG_POOL.labels(settings.service, name, "open").set_function(pool.get_size)
        PG_POOL.labels(settings.service, name, "idle").set_function(pool.get_idle_size)
    return Pools(primary, replica, settings.service)


def _terminate_pools(pools: Pools) -> None:
    if pools.replica is not pools.primary:
        pools.replica.terminate()
    pools.primary.terminate()


async def close_pools(pools: Pools) -> None:
    if pools.replica is not pools.primary:
        await pools.replica.close()
    await pools.primary.close()


async def _check(pools: Pools) -> object:
    return await pools.primary.fetchval("SELECT 1")


def postgres_dependency(
    settings: Settings, migrations: str | None = None, max_size: int = 10
) -> Dependency[Pools]:
    """Pools connected in the background; `migrations` names a package holding schema.sql."""

    async def connect() -> Pools:
        pools = await open_pools(settings, max_size=max_size)
        if migrations:
            try:
                await migrate(pools.primary, migrations)
            except asyncio.CancelledError:
                # Stopped while migrating (say, waiting for another service's migration lock):
                # the pools are nobody's yet, so they are torn down here, without waiting.
                _terminate_pools(pools)
                raise
            except Exception:
                await close_pools(pools)
                raise
        return pools

    return Dependency("postgres", settings.service, connect, close_pools, _check)


async def migrate(pool: asyncpg.Pool, package: str) -> None:
    """Apply `package`/schema.sql once per content hash, serialised by an advisory lock.

    The SQL is written to be idempotent (IF NOT EXISTS), so many instances starting
    together are safe; the lock keeps them from racing on catalog updates. One lock serves every
    package: services sharing a database all create `schema_migrations`, and two CREATE TABLE IF
    NOT EXISTS at once can still collide in the catalog (seen when ingest and query started together).
    """
    sql = resources.files(package).joinpath("schema.sql").read_text()
    digest = hashlib.sha256(sql.encode()).hexdigest()
    migrations_lock = lock_key("snapline schema migrations")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", migrations_lock)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " package text PRIMARY KEY, digest text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = await conn.fetchval("SELECT digest FROM schema_migrations WHERE package = $1", package)
        if done == digest:
            return
        await conn.execute(sql)
        await conn.execute(
            "INSERT INTO schema_migrations (package, digest) VALUES ($1, $2)"
            " ON CONFLICT (package) DO UPDATE SET digest = EXCLUDED.digest, applied_at = now()",
            package,
            digest,
        )
        log.info("schema_migrated", package=package, digest=digest[:12])


PARTITION_LOCK = 0x736E61706C696E65  # 'snapline': serialises partition DDL across instances


def lock_key(name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def swap_lock(package: str) -> int:
    """The lock a package's writers hold shared and a rebuild takes exclusive to swap its tables in
    (shared.shadow): no write transaction straddles a swap."""
    return lock_key(f"snapline table swap {package}")


async def share_swap_lock(conn: asyncpg.Connection, key: int | None) -> None:
    """Hold `key` shared until the caller's transaction ends (None: tables no rebuild swaps, a shadow's own)."""
    if key is not None:
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", key)


class SeasonArchivedError(Exception):
    """An event of a season that is in cold storage: not applied (the consumer dead-letters it)."""


class SeasonPartitions:
    """Creates the yearly partitions of a season-partitioned table on demand, once per process.

    With a `swap_lock`, the DDL runs under it (shared): a partition is created either in the tables
    a rebuild swaps out, before the swap (which copies their partitions), or in the swapped-in ones.
    """

    def __init__(self, table: str, swap_lock: int | None = None, archived: str | None = None) -> None:
        if not table.isidentifier():
            raise ValueError(f"{table!r} is not a plain table name")
        self.table = table
        self._swap_lock = swap_lock
        # The owner's table of seasons in cold storage (shared/archive.py): no partition is made for
        # them again, so a late event of an archived season is refused (and dead-lettered).
        self._archived = archived
        self._known: set[int] = set()

    def __repr__(self) -> str:
        return f"SeasonPartitions({self.table!r}, known={sorted(self._known)})"

    async def ensure(self, conn: asyncpg.Connection, seasons: set[int]) -> None:
        """Create the partitions of `seasons` that this process has not seen yet."""
        missing = seasons - self._known
        if not missing:
            return
        async with conn.transaction():
            await share_swap_lock(conn, self._swap_lock)  # before the partition lock, as a swap takes them
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            if self._archived is not None:
                archived = await conn.fetchval(
                    f"SELECT min(season) FROM {self._archived} WHERE season = ANY($1::int[])", sorted(missing)
                )
                if archived is not None:
                    raise SeasonArchivedError(
                        f"season {archived} is archived: its events are not applied until `snapline restore "
                        f"{archived}` brings it back (then `snapline rebuild` applies them from the plays topic)"
                    )
            for season in sorted(missing):
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table}_{season:d} PARTITION OF {self.table} "
                    f"FOR VALUES FROM ({season:d}) TO ({season + 1:d})"
                )
        log.info("partitions_ready", table=self.table, seasons=sorted(missing))
        self._known |= missing
