"""The pressure ranking at any filter in milliseconds: `defender_plays` held in process as columns.

Each instance keeps the rows of `defender_plays` in numpy arrays, one segment per (season, season
type, week), joined per season. A ranking is a boolean mask over a season's columns and three
`bincount`s, then the top rows by the rounded rate (the SQL's order, reproduced exactly with
integer arithmetic); no SQL but one small read of the generations and the names of the top players.

Fresh from the stream without consuming it: the store raises, in the transaction that writes
defender rows, the generation of each (season, season type, week) it touched as well as its
season's (shared/answers.py). Before answering, the index reads the season generations (one
query of a few rows), and for a season that moved, its week generations, and reloads only the
weeks that moved, in one repeatable-read snapshot, generations first, so what it holds is never
older than the generations it records. A rebuild's swap raises every generation and `epoch`:
the index then reloads everything. So an answer is never older than the read pool's snapshot
at the moment it was asked, as the SQL's would be. Kafka partitions need no coordination: every
instance reads the committed tables.

Bounded by ANALYTICS_INDEX_ROWS: past it the index lets go and the ranking is SQL again (logged,
`snapline_analytics_index_in_use` is 0).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from services.analytics.epa import season_types
from shared.logging import get_logger

log = get_logger(__name__)

ROWS = Gauge("snapline_analytics_index_rows", "Defender snaps held by the in-process pressure index")
BYTES = Gauge("snapline_analytics_index_bytes", "Bytes of the in-process pressure index's columns")
IN_USE = Gauge(
    "snapline_analytics_index_in_use",
    "1: the pressure ranking is answered by the index; 0: off or over ANALYTICS_INDEX_ROWS (SQL answers)",
)
LOADS = Counter(
    "snapline_analytics_index_loads_total", "Segments (season weeks) read into the index", ["why"]
)
LOADED_ROWS = Counter("snapline_analytics_index_loaded_rows_total", "Rows read into the index")
REFRESH = Histogram(
    "snapline_analytics_index_refresh_seconds", "Generation checks and reloads before an answer",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)  # fmt: skip
BASE_BUILDS = Counter("snapline_analytics_index_base_builds_total", "Builds of the index's all-seasons base")
BASE_BUILD_SECONDS = Histogram(
    "snapline_analytics_index_base_build_seconds", "How long a build of the all-seasons base took (in a thread)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip
ANSWER = Histogram(
    "snapline_analytics_index_answer_seconds", "The in-process ranking's computation (after the refresh)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)  # fmt: skip

SEASON_TYPE_CODES = {"PRE": 0, "REG": 1, "POST": 2}
NULL = -1  # a missing down, distance or yardline: never matches a filter on it, as NULL in SQL
_COLUMNS = "season_type, week, quarter, down, yards_to_go, yardline_100, team, player_id, pressure, sacks"
_WEEK_SQL = f"SELECT {_COLUMNS} FROM defender_plays WHERE season = $1 AND season_type = $2 AND week = $3"
_SEASON_SQL = f"SELECT {_COLUMNS} FROM defender_plays WHERE season = $1"
_PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'defender_plays'::regclass"
)
_NAMES = "SELECT player_id, name, position FROM players WHERE player_id = ANY($1::text[])"
_POSITIONS = "SELECT player_id FROM players WHERE position = ANY($1::text[])"
WeekKey = tuple[str, int]  # season type, week


@dataclass
class Columns:
    """Defender snaps as parallel arrays (one segment, or a season's segments joined)."""

    season_type: np.ndarray  # int8
    week: np.ndarray  # int8
    quarter: np.ndarray  # int8
    down: np.ndarray  # int8, NULL when none
    yards_to_go: np.ndarray  # int16
    yardline_100: np.ndarray  # int16
    team: np.ndarray  # int16 code id
    player: np.ndarray  # int32 player id
    pressure: np.ndarray  # bool
    sacks: np.ndarray  # float32

    FIELDS = ("season_type", "week", "quarter", "down", "yards_to_go", "yardline_100", "team", "player",
              "pressure", "sacks")  # fmt: skip

    @classmethod
    def empty(cls) -> Columns:
        return cls.join([])

    @classmethod
    def join(cls, parts: list[Columns]) -> Columns:
        types = (
            np.int8,
            np.int8,
            np.int8,
            np.int8,
            np.int16,
            np.int16,
            np.int16,
            np.int32,
            np.bool_,
            np.float32,
        )
        return cls(*(
            np.concatenate([getattr(c, f) for c in parts]) if parts else np.zeros(0, dtype=t)
            for f, t in zip(cls.FIELDS, types, strict=True)
        ))  # fmt: skip

    def take(self, index: np.ndarray) -> Columns:
        return Columns(*(getattr(self, f)[index] for f in self.FIELDS))

    def view(self, lo: int, hi: int) -> Columns:
        return Columns(*(getattr(self, f)[lo:hi] for f in self.FIELDS))

    def __len__(self) -> int:
        return len(self.player)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.FIELDS)


@dataclass
class Season:
    weeks: dict[WeekKey, Columns] = field(default_factory=dict)
    week_gens: dict[str, int] = field(default_factory=dict)
    gen: int | None = None
    joined: Columns = field(default_factory=Columns.empty)

    def rejoin(self) -> None:
        """The season's weeks as one set of columns sorted by (season type, down, distance), so that
        those filters select contiguous slices (`_slices`) and the rest is masked within them."""
        joined = Columns.join([self.weeks[k] for k in sorted(self.weeks)])
        key = sort_key(joined.season_type, joined.down, joined.yards_to_go)
        order = np.argsort(key, kind="stable")
        self.joined, self.key = joined.take(order), key[order]

    key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))


def sort_key(season_type: np.ndarray | int, down: np.ndarray | int, yards_to_go: np.ndarray | int) -> Any:
    """(season type, down, distance) as one sortable integer; a missing down or distance sorts first."""
    return (np.asarray(season_type, np.int32) * 1000 + (np.asarray(down, np.int32) + 1) * 128
            + (np.asarray(yards_to_go, np.int32) + 1))  # fmt: skip


def _slices(key: np.ndarray, values: dict[str, Any], types: list[str] | None) -> list[tuple[int, int]]:
    """Row ranges of columns sorted by `sort_key` that hold every row the season type, down and
    distance filters can select (the other filters are masks within them)."""
    stypes = sorted(SEASON_TYPE_CODES[t] for t in types) if types is not None else [0, 1, 2, 3]
    out: list[tuple[int, int]] = []
    for st in stypes:
        if "down" not in values:
            # Bounds of the key's own dtype: another type makes numpy cast the whole key first.
            lo, hi = np.searchsorted(key, np.array([st * 1000, (st + 1) * 1000], key.dtype), side="left")
            out.append((int(lo), int(hi)))
            continue
        # A missing distance (key 0) never matches a distance filter, as NULL in SQL.
        ylo = values["ytg_min"] + 1 if "ytg_min" in values else 1 if "ytg_max" in values else 0
        yhi = values["ytg_max"] + 1 if "ytg_max" in values else 127
        for d in sorted(set(values["down"])):
            base = st * 1000 + (d + 1) * 128
            lo = int(np.searchsorted(key, key.dtype.type(base + ylo), side="left"))
            hi = int(np.searchsorted(key, key.dtype.type(base + yhi), side="right"))
            out.append((lo, hi))
    return [(lo, hi) for lo, hi in out if hi > lo]


@dataclass
class Base:
    """Every season's rows in one set of columns sorted by `sort_key` (seasons mixed), so that a
    ranking over many seasons is a few slices instead of a loop over seasons. Built in a thread
    from the seasons as they were (`gens`); a season that moved since is masked out of it and
    answered from its own columns until the next build."""

    cols: Columns
    key: np.ndarray
    season: np.ndarray  # int16
    gens: dict[int, int | None]
    built: float

    @classmethod
    def build(cls, seasons: dict[int, tuple[Columns, np.ndarray, int | None]]) -> Base:
        parts = [(cols, key, season) for season, (cols, key, _) in sorted(seasons.items()) if len(cols)]
        cols = Columns.join([c for c, _, _ in parts])
        key = np.concatenate([k for _, k, _ in parts]) if parts else np.zeros(0, np.int32)
        season = (
            np.concatenate([np.full(len(c), s, np.int16) for c, _, s in parts])
            if parts
            else np.zeros(0, np.int16)
        )
        order = np.argsort(key, kind="stable")
        return cls(cols.take(order), key[order], season[order], {s: g for s, (_, _, g) in seasons.items()},
                   time.monotonic())  # fmt: skip


# A ranking naming at most this many seasons reads their own columns; more, and it reads the base.
FEW_SEASONS = 6
BASE_EVERY = 5.0  # seconds between looks at whether the base is worth building again
BASE_STALE = 15.0  # a base with a moved season is built again once this old


def week_tag(season: int, season_type: str, week: int) -> str:
    """The generation tag of one week's defender rows (raised by the store, read by the index)."""
    return f"week:{season}:{season_type}:{week}"


class Over(Exception):
    """The index would hold more rows than ANALYTICS_INDEX_ROWS."""


class DefenderIndex:
    """Every defender snap of `defender_plays`, in columns; see the module's docstring."""

    def __init__(self, generations: str, max_rows: int) -> None:
        self.generations = generations
        self.max_rows = max_rows
        self.seasons: dict[int, Season] = {}
        self.epoch: int | None = None
        self.codes: dict[str, int] = {}
        self.code_names: list[str] = []
        self.players: dict[str, int] = {}
        self.player_ids: list[str] = []
        self.disabled: str | None = None if max_rows > 0 else "off (ANALYTICS_INDEX_ROWS=0)"
        self.base: Base | None = None
        self.few_seasons = FEW_SEASONS
        self._lock = asyncio.Lock()
        IN_USE.set(0 if self.disabled else 1)

    @property
    def enabled(self) -> bool:
        return self.disabled is None

    # --- keeping it fresh -------------------------------------------------------------------------

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Bring every season up to the generations committed now (one refresher at a time; a
        caller that waited for another's refresh checks again, which is one cheap read)."""
        started = time.perf_counter()
        async with self._lock, pool.acquire() as conn:
            if self._moved(await self._gens(conn)):  # else the usual case: one read, no transaction
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    await self._refresh(conn)
        REFRESH.observe(time.perf_counter() - started)

    async def _gens(self, conn: asyncpg.Connection) -> dict[str, int]:
        rows = await conn.fetch(
            f"SELECT tag, gen FROM {self.generations} WHERE tag = 'epoch' OR tag LIKE 'season:%'"
        )
        return {r["tag"]: r["gen"] for r in rows}

    def _moved(self, gens: dict[str, int]) -> bool:
        if gens.get("epoch", 0) != self.epoch:
            return True
        seasons = {int(tag.split(":", 1)[1]) for tag in gens if tag.startswith("season:")} | set(self.seasons)
        return any(
            season not in self.seasons or self.seasons[season].gen != gens.get(f"season:{season}", 0)
            for season in seasons
        )

    async def _refresh(self, conn: asyncpg.Connection) -> None:
        gens = await self._gens(conn)  # again, in the snapshot the rows are read in
        epoch = gens.get("epoch", 0)
        if epoch != self.epoch:  # first use, or a rebuild swapped the tables in: everything again
            self.seasons, self.base = {}, None
            seasons = {int(r["relname"].rsplit("_", 1)[1]) for r in await conn.fetch(_PARTITIONS)
                       if r["relname"].rsplit("_", 1)[-1].isdigit()}  # fmt: skip
            self.epoch = epoch
        else:
            seasons = set(self.seasons)
        seasons |= {int(tag.split(":", 1)[1]) for tag in gens if tag.startswith("season:")}
        for season in sorted(seasons):
            gen = gens.get(f"season:{season}", 0)
            held = self.seasons.get(season)
            if held is not None and held.gen == gen:
                continue
            if held is None:
                held = self.seasons[season] = await self._load_season(conn, season)
            else:
                await self._reload_weeks(conn, season, held)
            held.gen = gen
        self._account()

    async def _week_gens(self, conn: asyncpg.Connection, season: int) -> dict[str, int]:
        rows = await conn.fetch(
            f"SELECT tag, gen FROM {self.generations} WHERE tag LIKE $1", f"week:{season}:%"
        )
        return {r["tag"]: r["gen"] for r in rows}

    async def _load_season(self, conn: asyncpg.Connection, season: int) -> Season:
        held = Season(week_gens=await self._week_gens(conn, season))
        cols = self._columns(await conn.fetch(_SEASON_SQL, season))
        if len(cols):
            keys = cols.season_type.astype(np.int16) * 64 + cols.week
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            cols = cols.take(order)
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            names = {v: k for k, v in SEASON_TYPE_CODES.items()}
            for i, start in enumerate(starts):
                end = starts[i + 1] if i + 1 < len(starts) else len(keys)
                key = (names[int(keys[start]) // 64], int(keys[start]) % 64)
                held.weeks[key] = cols.take(np.arange(start, end))
        LOADS.labels("season").inc()
        held.rejoin()
        return held

    async def _reload_weeks(self, conn: asyncpg.Connection, season: int, held: Season) -> None:
        gens = await self._week_gens(conn, season)
        for tag, gen in gens.items():
            if held.week_gens.get(tag) == gen:
                continue
            _, _, season_type, week = tag.split(":")
            key = (season_type, int(week))
            cols = self._columns(await conn.fetch(_WEEK_SQL, season, season_type, int(week)))
            if len(cols):
                held.weeks[key] = cols
            else:
                held.weeks.pop(key, None)
            LOADS.labels("week").inc()
        held.week_gens = gens
        held.rejoin()

    def _columns(self, rows: list[asyncpg.Record]) -> Columns:
        n = len(rows)
        total = sum(len(s.joined) for s in self.seasons.values()) + n
        if total > self.max_rows:
            raise Over(f"{total:,} rows is more than ANALYTICS_INDEX_ROWS={self.max_rows:,}")
        LOADED_ROWS.inc(n)
        code, player = self._code, self._player
        return Columns(
            np.fromiter((SEASON_TYPE_CODES.get(r[0], 3) for r in rows), np.int8, n),
            np.fromiter((r[1] for r in rows), np.int8, n),
            np.fromiter((r[2] if r[2] is not None else NULL for r in rows), np.int8, n),
            np.fromiter((r[3] if r[3] is not None else NULL for r in rows), np.int8, n),
            np.fromiter((r[4] if r[4] is not None else NULL for r in rows), np.int16, n),
            np.fromiter((r[5] if r[5] is not None else NULL for r in rows), np.int16, n),
            np.fromiter((code(r[6]) for r in rows), np.int16, n),
            np.fromiter((player(r[7]) for r in rows), np.int32, n),
            np.fromiter((r[8] for r in rows), np.bool_, n),
            np.fromiter((r[9] for r in rows), np.float32, n),
        )

    def _code(self, code: str) -> int:
        got = self.codes.get(code)
        if got is None:
            got = self.codes[code] = len(self.code_names)
            self.code_names.append(code)
        return got

    def _player(self, player_id: str) -> int:
        got = self.players.get(player_id)
        if got is None:
            got = self.players[player_id] = len(self.player_ids)
            self.player_ids.append(player_id)
        return got

    def _account(self) -> None:
        ROWS.set(sum(len(s.joined) for s in self.seasons.values()))
        BYTES.set(
            sum(s.joined.nbytes + sum(w.nbytes for w in s.weeks.values()) for s in self.seasons.values())
        )

    def let_go(self, why: str) -> None:
        self.seasons, self.base, self.disabled = {}, None, why
        ROWS.set(0)
        BYTES.set(0)
        IN_USE.set(0)
        log.warning("analytics_index_off", reason=why)

    async def warm(self, db: Any) -> None:
        """The background task: load everything once the database is reachable, before the first ask."""
        await db.wait()
        if self.enabled:
            started = time.perf_counter()
            try:
                await db.get().read(self.refresh)
            except Over as exc:
                self.let_go(str(exc))
                return
            await self.rebuild_base()
            rows = sum(len(season.joined) for season in self.seasons.values())
            log.info("analytics_index_loaded", rows=rows, seconds=round(time.perf_counter() - started, 2))
            while self.enabled:
                await asyncio.sleep(BASE_EVERY)
                base = self.base
                if self._dirty() and (base is None or time.monotonic() - base.built >= BASE_STALE):
                    await self.rebuild_base()

    def _dirty(self) -> set[int]:
        """Seasons the base does not hold as they are now (moved since it was built, or new)."""
        base = self.base
        if base is None:
            return set(self.seasons)
        return {s for s, held in self.seasons.items() if base.gens.get(s, -1) != held.gen} | (
            set(base.gens) - set(self.seasons)
        )

    async def rebuild_base(self) -> None:
        """Build the base from the seasons as they are now, in a thread (numpy lets the GIL go)."""
        snapshot = {s: (held.joined, held.key, held.gen) for s, held in self.seasons.items()}
        epoch, started = self.epoch, time.perf_counter()
        base = await asyncio.to_thread(Base.build, snapshot)
        if self.epoch == epoch and self.enabled:  # no rebuild's swap (a reload of everything) meanwhile
            self.base = base
            BASE_BUILDS.inc()
            BASE_BUILD_SECONDS.observe(time.perf_counter() - started)
            self._account()

    # --- answering --------------------------------------------------------------------------------

    async def pressure_leaders(
        self, pool: asyncpg.Pool, values: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        """The ranking's rows for parsed parameters, as the SQL answers them; None when the index
        is off (the caller asks SQL)."""
        if not self.enabled or (self.epoch is None and self._lock.locked()):
            return None  # off, or still loading for the first time (warm()): SQL answers meanwhile
        try:
            await self.refresh(pool)
        except Over as exc:
            self.let_go(str(exc))
            return None
        allowed = None
        if "position" in values:
            allowed = {r["player_id"] for r in await pool.fetch(_POSITIONS, values["position"])}
        started = time.perf_counter()
        top = self._rank(values, allowed)
        ANSWER.observe(time.perf_counter() - started)
        if not top:
            return []
        people = {r["player_id"]: r for r in await pool.fetch(_NAMES, [t["player_id"] for t in top])}
        for t in top:
            person = people.get(t["player_id"])
            t["name"] = person["name"] if person else None
            t["position"] = person["position"] if person else None
        keys = ("player_id", "name", "team", "position", "snaps", "pressures", "sacks", "pressure_rate")
        return [{k: t[k] for k in keys} for t in top]

    def _rank(self, values: dict[str, Any], allowed: set[str] | None) -> list[dict[str, Any]]:
        seasons = values.get("season") or sorted(self.seasons)
        n_players = len(self.player_ids)
        snaps = np.zeros(n_players, np.int64)
        pressures = np.zeros(n_players, np.int64)
        sacks = np.zeros(n_players, np.float64)
        picked: list[tuple[Columns, np.ndarray | None]] = []
        teams = None
        if "team" in values:
            teams = np.array([self.codes[c] for c in values["team"] if c in self.codes], np.int16)
        allowed_mask = None
        if allowed is not None:
            allowed_mask = np.zeros(n_players, np.bool_)
            allowed_mask[[self.players[pid] for pid in allowed if pid in self.players]] = True
        types = season_types(values)

        def add(c: Columns, mask: np.ndarray | None) -> None:
            """Count the selected rows (None: all of `c`); a sack is always a pressure, so both
            come from the pressure rows alone."""
            who = c.player if mask is None else c.player[mask]
            if not len(who):
                return
            np.add(snaps, np.bincount(who, minlength=n_players), out=snaps)
            hit = c.pressure if mask is None else mask & c.pressure
            hitters = c.player[hit]
            np.add(pressures, np.bincount(hitters, minlength=n_players), out=pressures)
            np.add(sacks, np.bincount(hitters, weights=c.sacks[hit], minlength=n_players), out=sacks)
            picked.append((c, mask))

        dirty = self._dirty()
        base = self.base
        own = set(seasons)  # the seasons answered from their own columns
        if base is not None and len(seasons) > self.few_seasons:
            from_base = [s for s in seasons if s in base.gens and s not in dirty]
            own -= set(from_base)
            ranges = _slices(base.key, values, types) if from_base else []
            keep = None
            if len(from_base) < len(base.gens):  # some of the base's seasons are not asked for, or moved
                keep = np.zeros(2101, np.bool_)  # a lookup by season: one pass, however many seasons
                keep[from_base] = True
            for lo, hi in ranges:  # views, no copies
                c = base.cols.view(lo, hi)
                mask = _mask(c, values, teams, allowed_mask)
                if keep is not None:
                    wanted = keep[base.season[lo:hi]]
                    mask = wanted if mask is None else mask & wanted
                add(c, mask)
        for season in sorted(own):
            held = self.seasons.get(season)
            if held is None or not len(held.joined):
                continue
            for lo, hi in _slices(held.key, values, types):
                c = held.joined.view(lo, hi)
                add(c, _mask(c, values, teams, allowed_mask))
        min_snaps = values.get("min_snaps", 50)
        candidates = np.flatnonzero(snaps >= min_snaps)
        if not len(candidates):
            return []
        # round(pressures / snaps, 4) as PostgreSQL rounds numeric (half away from zero), in integers.
        rate = (2 * pressures[candidates] * 10_000 + snaps[candidates]) // (2 * snaps[candidates])
        limit = values.get("limit", 20)
        if len(candidates) > limit:  # only those at or above the limit-th best rate can be in the top
            cut = np.partition(rate, len(rate) - limit)[len(rate) - limit]
            keep = rate >= cut
            candidates, rate = candidates[keep], rate[keep]
        ranked = sorted(zip(candidates.tolist(), rate.tolist(), strict=True),
                        key=lambda t: (-t[1], self.player_ids[t[0]]))[:limit]  # fmt: skip
        chosen = np.array([i for i, _ in ranked], np.int32)
        team_of = self._lowest_team(picked, chosen)
        return [
            {"player_id": self.player_ids[i], "team": team_of.get(i), "snaps": int(snaps[i]),
             "pressures": int(pressures[i]), "sacks": _number(float(sacks[i])), "pressure_rate": r / 10_000}
            for i, r in ranked
        ]  # fmt: skip

    def _lowest_team(
        self, picked: list[tuple[Columns, np.ndarray | None]], chosen: np.ndarray
    ) -> dict[int, str]:
        """min(team) per chosen player over the selected rows, as the SQL's min(d.team)."""
        out: dict[int, str] = {}
        wanted = np.zeros(len(self.player_ids), np.bool_)
        wanted[chosen] = True
        for c, mask in picked:
            rows = np.flatnonzero(wanted[c.player] if mask is None else mask & wanted[c.player])
            for who, team in zip(c.player[rows].tolist(), c.team[rows].tolist(), strict=True):
                name = self.code_names[team]
                if who not in out or name < out[who]:
                    out[who] = name
        return out


def _mask(
    c: Columns, values: dict[str, Any], teams: np.ndarray | None, allowed: np.ndarray | None
) -> np.ndarray | None:
    """The rows of `c` (a season's `_slices`: the season type, and with a down filter the down and
    distance, already hold) that the other filters select; None when no other filter applies."""
    mask: Any = None

    def narrow(selected: np.ndarray) -> None:
        nonlocal mask
        mask = selected if mask is None else mask & selected

    checks: list[tuple[str, np.ndarray, Any]] = [
        ("week_min", c.week, np.greater_equal), ("week_max", c.week, np.less_equal),
        ("yardline_min", c.yardline_100, np.greater_equal), ("yardline_max", c.yardline_100, np.less_equal),
    ]  # fmt: skip
    if "down" not in values:
        checks += [("ytg_min", c.yards_to_go, np.greater_equal), ("ytg_max", c.yards_to_go, np.less_equal)]
    for name, column, op in checks:
        if name in values:
            narrow(op(column, values[name]))
            if name.endswith("_max"):
                narrow(column != NULL)
    if "quarter" in values:
        narrow(np.isin(c.quarter, values["quarter"]))
    if teams is not None:
        narrow(np.isin(c.team, teams))
    if allowed is not None:
        narrow(allowed[c.player])
    return mask  # type: ignore[no-any-return]


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value
