"""Answers of the query API kept in process, never stale, computed once per key at a time.

Each answer reads some part of the data, named by tags: `game:<id>`, `season:<year>`, `team:<code>`,
or `all` (a read that no game or season narrows). The projector raises the generation of every
tag its batch touches (`bump`), in the batch's own transaction, so the generations in
`read_generations` move exactly when the data does. An answer is kept with the generations of its
tags read before it was computed, and served only while they are unchanged: a read that starts
after a batch committed sees the new generations and computes a fresh answer, whatever was kept.
An answer computed while a batch was committing was keyed with the older generations and is never
served after it. There is no flush: a play of one game leaves every other game's answers valid,
and a past season's answers stay valid through a live week.

Concurrent misses of one key (and generations) wait for the one computation in flight, so 50
requests for a fresh key run the query once. The entries and their bytes are bounded (settings
QUERY_CACHE_*), least recently used first out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge

from shared.config import Settings

REQUESTS = Counter(
    "snapline_query_cache_requests_total",
    "Reads of the query answer cache: hit, miss (computed), coalesced (waited for a computation in flight); "
    "unkept counts computed answers too large to keep",
    ["cache", "outcome"],
)
ENTRIES = Gauge("snapline_query_cache_entries", "Answers kept in process", ["cache"])
BYTES = Gauge("snapline_query_cache_bytes", "Bytes of the answers kept in process", ["cache"])
EVICTIONS = Counter(
    "snapline_query_cache_evictions_total", "Answers dropped to stay within the bounds", ["cache"]
)

BUMP_SQL = (
    "INSERT INTO read_generations (tag, gen) SELECT t, 1 FROM unnest($1::text[]) AS t "
    "ON CONFLICT (tag) DO UPDATE SET gen = read_generations.gen + 1"
)
_GENS_SQL = "SELECT tag, gen FROM read_generations WHERE tag = ANY($1::text[])"
_key_encoder = msgspec.json.Encoder(order="sorted")


def batch_tags(games: Iterable[Any]) -> list[str]:
    """The tags a batch of these games' events changes (games as shared.events.GameView), sorted:
    concurrent writers take the rows' locks in one order."""
    tags = {"all"}
    for g in games:
        tags.update((f"game:{g.game_id}", f"season:{g.season}", f"team:{g.home}", f"team:{g.away}"))
    return sorted(tags)


async def bump(conn: asyncpg.Connection, tags: list[str]) -> None:
    """Raise the generations of `tags` (inside the writer's transaction: last, to hold the rows briefly)."""
    await conn.execute(BUMP_SQL, tags)


def cache_key(route: str, values: dict[str, Any]) -> str:
    """A key from the parsed parameters: names sorted and list values sorted, so the same
    question asked with its parameters in another order is the same entry."""
    canonical = {k: sorted(v) if isinstance(v, list) else v for k, v in values.items()}
    return f"{route}?{_key_encoder.encode(canonical).decode()}"


class ReadCache:
    """Bounded LRU of encoded answers, each valid for the generations of its tags."""

    def __init__(self, name: str, max_entries: int, max_bytes: int, max_entry_bytes: int) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("QUERY_CACHE_ENTRIES and QUERY_CACHE_BYTES must not be negative")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[str, tuple[tuple[int, ...], bytes]] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[tuple[str, tuple[int, ...]], asyncio.Future[bytes]] = {}
        self._outcomes = {o: REQUESTS.labels(name, o) for o in ("hit", "miss", "coalesced", "unkept")}
        self._entries_gauge = ENTRIES.labels(name)
        self._bytes_gauge = BYTES.labels(name)
        self._evictions = EVICTIONS.labels(name)

    @classmethod
    def from_settings(cls, settings: Settings, name: str = "answers") -> ReadCache:
        return cls(
            name, settings.query_cache_entries, settings.query_cache_bytes, settings.query_cache_entry_bytes
        )

    def __repr__(self) -> str:
        return f"ReadCache({self.name!r}, {len(self._entries)} entries, {self._bytes} bytes)"

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self, pool: asyncpg.Pool, key: str, tags: list[str], compute: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The answer for `key`: kept, in flight, or computed now (always computed with
        QUERY_CACHE_ENTRIES=0: the cache off, no generations read, no coalescing)."""
        if self.max_entries == 0:
            return await compute()
        rows = await pool.fetch(_GENS_SQL, tags)
        found = {r["tag"]: r["gen"] for r in rows}
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
            self._outcomes["miss"].inc()
            task = asyncio.ensure_future(compute())
            self._inflight[flight] = task
            task.add_done_callback(lambda done: self._landed(flight, done))
        return await asyncio.shield(task)

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
