"""A read service's answer cache: never stale, scoped, one computation per key (and instance).

Each answer reads some part of the data, named by tags (`game:<id>`, `season:<year>`, `all`...).
The service's writer raises the generation of every tag its batch touches (`bump`) in the batch's
own transaction, in a generations table the service owns, so the generations move exactly when
the data does. An answer is kept with the generations of its tags, read before it was computed,
and served only while they are unchanged: a read that starts after a batch committed sees the new
generations and gets a fresh answer, whatever was kept, and nothing is ever flushed.

Two tiers: a bounded LRU in the process (entries and bytes), then, when the service has Redis,
a shared tier there (answers with their generations, TTL_SECONDS), so an instance can use what
another computed. Concurrent misses of one key and generations in a process wait for the one
computation in flight; across instances the first takes a short Redis lock and the others wait
for its answer (up to LOCK_SECONDS, then compute themselves). Redis is never needed for a
correct answer: when it fails, the process computes and says so (outcome `error`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge

from shared.config import Settings
from shared.deps import Dependency, Unavailable
from shared.logging import get_logger

log = get_logger(__name__)
REQUESTS = Counter(
    "snapline_answer_cache_requests_total",
    "Answer cache reads: hit (this process), shared_hit (Redis), miss (computed here), coalesced (waited for "
    "this process's computation), waited (for another instance's), error (Redis failed: computed); "
    "unkept counts computed answers too large to keep",
    ["cache", "outcome"],
)
ENTRIES = Gauge("snapline_answer_cache_entries", "Answers kept in process", ["cache"])
BYTES = Gauge("snapline_answer_cache_bytes", "Bytes of the answers kept in process", ["cache"])
BYTES_LIMIT = Gauge(
    "snapline_answer_cache_bytes_limit", "The bound on the bytes of answers kept in process", ["cache"]
)
EVICTIONS = Counter(
    "snapline_answer_cache_evictions_total", "Answers dropped to stay within the bounds", ["cache"]
)
TTL_SECONDS = 300  # an answer's life in the shared tier (its generations decide whether it is used)
LOCK_SECONDS = 2.0  # how long other instances wait for the one computing an answer
_key_encoder = msgspec.json.Encoder(order="sorted")
_shared = msgspec.msgpack.Decoder(tuple[list[int], bytes])
OUTCOMES = ("hit", "shared_hit", "miss", "coalesced", "waited", "error", "unkept")


def cache_key(route: str, values: dict[str, Any]) -> str:
    """A key from parsed parameters: names sorted and list values sorted, so the same question
    asked with its parameters in another order is the same entry."""
    canonical = {k: sorted(v) if isinstance(v, list) else v for k, v in values.items()}
    return f"{route}?{_key_encoder.encode(canonical).decode()}"


def seasons_or_all(values: dict[str, Any]) -> list[str]:
    """The tags of a read narrowed by `season` (its seasons), else `all`."""
    return sorted(f"season:{s}" for s in set(values["season"])) if values.get("season") else ["all"]


async def bump(conn: asyncpg.Connection, table: str, tags: Iterable[str]) -> None:
    """Raise the generations of `tags` in `table` inside the writer's transaction (last, so the rows
    are locked briefly; sorted, so concurrent writers lock them in one order)."""
    await conn.execute(
        f"INSERT INTO {table} (tag, gen) SELECT t, 1 FROM unnest($1::text[]) AS t "
        f"ON CONFLICT (tag) DO UPDATE SET gen = {table}.gen + 1",
        sorted(set(tags)),
    )


async def bump_all(conn: asyncpg.Connection, table: str) -> None:
    """Raise every generation in `table` (after a rebuild swapped in tables every answer read), and
    `epoch`, which only this raises: what holds a copy of the tables (analytics' index) reads them again."""
    await conn.execute(
        f"INSERT INTO {table} (tag, gen) VALUES ('all', 1), ('epoch', 0) ON CONFLICT (tag) DO NOTHING"
    )
    await conn.execute(f"UPDATE {table} SET gen = gen + 1")


def after_swap(table: str) -> Callable[[Settings], Awaitable[None]]:
    """A rebuild's step once its tables are swapped in: answers computed from the old tables go."""

    async def invalidate(settings: Settings) -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await bump_all(conn, table)
        finally:
            await conn.close()

    return invalidate


class AnswerCache:
    """Bounded LRU of encoded answers, each valid for the generations of its tags, over an
    optional shared tier in Redis."""

    def __init__(
        self, name: str, generations: str, max_entries: int, max_bytes: int, max_entry_bytes: int,
        redis: Dependency[Any] | None = None, redis_prefix: str = "",
    ) -> None:  # fmt: skip
        if max_entries < 0 or max_bytes < 0:
            raise ValueError(f"{name}: the answer cache's entry and byte bounds must not be negative")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._gens_sql = f"SELECT tag, gen FROM {generations} WHERE tag = ANY($1::text[])"
        self._redis = redis
        self._redis_prefix = f"{redis_prefix}:{name}:answers"
        self._entries: OrderedDict[str, tuple[tuple[int, ...], bytes]] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[tuple[str, tuple[int, ...]], asyncio.Future[bytes]] = {}
        self._outcomes = {o: REQUESTS.labels(name, o) for o in OUTCOMES}
        self._entries_gauge = ENTRIES.labels(name)
        self._bytes_gauge = BYTES.labels(name)
        BYTES_LIMIT.labels(name).set(max_bytes)
        self._evictions = EVICTIONS.labels(name)

    def __repr__(self) -> str:
        return f"AnswerCache({self.name!r}, {len(self._entries)} entries, {self._bytes} bytes)"

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self, pool: asyncpg.Pool, key: str, tags: list[str], compute: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The answer for `key`: kept, in flight, shared, or computed now (always computed when the
        cache holds no entries: off, no generations read, no coalescing)."""
        if self.max_entries == 0:
            return await compute()
        found = {r["tag"]: r["gen"] for r in await pool.fetch(self._gens_sql, tags)}
        gens = tuple(found.get(t, 0) for t in tags)
        kept = self._entries.get(key)
        if kept is not None and kept[0] == gens:
            self._entries.move_to_end(key)
            self._outcomes["hit"].inc()
            return kept[1]
        flight = (key, gens)
        task = self._inflight.get(flight)
        if task is not None:
            self._outcomes["coalesced"].inc()
        else:
            # A task of its own: a caller that goes away does not cancel what the others wait for.
            task = asyncio.ensure_future(self._fill(key, gens, compute))
            self._inflight[flight] = task
            task.add_done_callback(lambda done: self._landed(flight, done))
        return await asyncio.shield(task)

    async def _fill(self, key: str, gens: tuple[int, ...], compute: Callable[[], Awaitable[bytes]]) -> bytes:
        if self._redis is None:
            self._outcomes["miss"].inc()
            return await compute()
        shared_key = f"{self._redis_prefix}:{hashlib.sha1(key.encode()).hexdigest()}"
        lock_key = f"{shared_key}:lock:{'.'.join(map(str, gens))}"
        try:
            redis = self._redis.get()
            if (body := self._usable(await redis.get(shared_key), gens)) is not None:
                self._outcomes["shared_hit"].inc()
                return body
            locked = await redis.set(lock_key, b"1", nx=True, px=int(LOCK_SECONDS * 1000))
            if not locked and (body := await self._wait_for_other(redis, shared_key, gens)) is not None:
                self._outcomes["waited"].inc()
                return body
        except Exception as exc:  # Redis down or failing: the answer comes from PostgreSQL alone
            if not isinstance(exc, Unavailable):  # (a dependency known to be down logs that itself)
                log.warning("answer_cache_unavailable", cache=self.name, error=f"{type(exc).__name__}: {exc}")
            self._outcomes["error"].inc()
            return await compute()
        self._outcomes["miss"].inc()
        body = await compute()
        try:
            await redis.set(shared_key, msgspec.msgpack.encode((list(gens), body)), ex=TTL_SECONDS)
            await redis.delete(lock_key)
        except Exception as exc:
            log.warning("answer_cache_unavailable", cache=self.name, error=f"{type(exc).__name__}: {exc}")
        return body

    @staticmethod
    def _usable(raw: bytes | None, gens: tuple[int, ...]) -> bytes | None:
        if raw is None:
            return None
        try:
            stored, body = _shared.decode(raw)
        except msgspec.DecodeError:
            return None
        return body if tuple(stored) == gens else None

    async def _wait_for_other(self, redis: Any, shared_key: str, gens: tuple[int, ...]) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_SECONDS
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            if (body := self._usable(await redis.get(shared_key), gens)) is not None:
                return body
        return None

    def _landed(self, flight: tuple[str, tuple[int, ...]], task: asyncio.Future[bytes]) -> None:
        del self._inflight[flight]
        if not task.cancelled() and task.exception() is None:
            self._keep(*flight, task.result())

    def _keep(self, key: str, gens: tuple[int, ...], body: bytes) -> None:
        if len(body) > self.max_entry_bytes:
            self._outcomes["unkept"].inc()
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        self._entries[key] = (gens, body)
        self._bytes += len(body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
            self._evictions.inc()
        self._entries_gauge.set(len(self._entries))
        self._bytes_gauge.set(self._bytes)
