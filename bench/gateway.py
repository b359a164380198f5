"""Gateway benchmark: what the gateway adds to a REST call, and 10,000 idle viewers through it.

Starts its own five service processes (bench/stack.py) and, in one run, measures:
  (a) an authenticated (API key), rate-limited GET /v1/teams through the gateway against the same
      GET sent to the query service directly: p50/p99 and requests/s at 1 and at --concurrency
      clients (each run bounded by --requests and --seconds);
  (b) --viewers idle WebSocket viewers on /v1/live through the gateway, joined as fast as the
      viewer processes go: the time to connect them all, RSS per connection at the gateway and at
      live, and REST through the gateway while they are connected against before.
The viewers are raw asyncio clients (handshake, then answer pings) spread over --workers
processes, so the load generator stays light on a 2-core machine; everything is on loopback.

    python bench/gateway.py [--viewers 10000] [--workers 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import OPEN_FILES, SERVICES, BenchStack
from bench.wsclient import RawViewer
from services.gateway.accounts import create_key
from services.gateway.upstreams import Timeouts, UpstreamPool
from shared.config import Settings
from shared.db import migrate

GATEWAY = f"http://127.0.0.1:{SERVICES['gateway']}"
QUERY = f"http://127.0.0.1:{SERVICES['query']}"
RELAY_PORT = 18096
RELAY = f"http://127.0.0.1:{RELAY_PORT}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_files(pid: int) -> int:
    """The soft limit on open files of process `pid`."""
    return int(Path(f"/proc/{pid}/limits").read_text().split("Max open files")[1].split()[0])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def rest_run(
    url: str, headers: dict[str, str], clients: int, requests: int, seconds: float
) -> dict[str, float]:
    """`clients` loops of GET `url` until `requests` were made or `seconds` passed: p50, p99 (ms), req/s.

    The load generator is the gateway's own keep-alive client (services/gateway/upstreams.py,
    llhttp): on 2 cores every microsecond the generator spends is taken from the services it
    measures, and aiohttp's client costs about 300 us a request against 170 us for this one.
    """
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    parsed = URL(url)
    target = parsed.raw_path_qs
    pool = UpstreamPool("bench", str(parsed.origin()), clients, 60.0, Timeouts(10.0, 60.0))

    async def get() -> int:
        async with pool.request("GET", target, headers) as resp:
            await resp.read()
            return resp.status

    async def client() -> None:
        nonlocal failures
        while len(latencies) + failures < requests and time.perf_counter() < deadline:
            started = time.perf_counter()
            if await get() != 200:
                failures += 1
                continue
            latencies.append(time.perf_counter() - started)

    try:
        for _ in range(min(20, requests)):  # warm the connections and caches
            await get()
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    return {"p50": pct(latencies, 0.5) * 1000, "p99": pct(latencies, 0.99) * 1000,
            "rps": len(latencies) / elapsed, "n": len(latencies), "failed": failures,
            "seconds": elapsed, "latencies": latencies}  # fmt: skip


def merged(runs: list[dict]) -> dict[str, float]:
    """One figure set from several runs: percentiles over all their latencies, requests/s over their time."""
    latencies = [x for r in runs for x in r["latencies"]]
    elapsed = sum(r["seconds"] for r in runs)
    return {"p50": pct(latencies, 0.5) * 1000, "p99": pct(latencies, 0.99) * 1000,
            "rps": len(latencies) / elapsed, "n": len(latencies), "failed": sum(r["failed"] for r in runs)}  # fmt: skip


async def paired(
    headers: dict[str, str], clients: int, requests: int, seconds: float, rounds: int
) -> dict[str, dict[str, float]]:
    """Direct, through the raw relay and through the gateway, taken in rotating rounds so drift on a
    shared machine (other processes, frequency scaling) falls on every side alike."""
    sides = [("direct", f"{QUERY}/v1/teams", {}), ("relay", f"{RELAY}/v1/teams", {}),
             ("gateway", f"{GATEWAY}/v1/teams", headers)]  # fmt: skip
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in sides}
    for i in range(rounds):
        for name, url, h in sides[i % 3 :] + sides[: i % 3]:
            runs[name].append(await rest_run(url, h, clients, requests // rounds, seconds / rounds))
    return {name: merged(r) for name, r in runs.items()}


# viewer worker: python bench/gateway.py --viewer-worker COUNT KEY


class Viewer(RawViewer):
    """The upgrade, then pongs for live's pings; everything else is dropped."""


async def viewer_worker(count: int, key: str, in_flight: int) -> None:
    """Connect `count` viewers, print how it went, hold them until stdin says stop (or 300 s)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(in_flight)
    viewers: list[Viewer] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            ready: asyncio.Future[bool] = loop.create_future()
            try:
                async with asyncio.timeout(30):
                    _, viewer = await loop.create_connection(lambda: Viewer(key, ready), "127.0.0.1",
                                                             SERVICES["gateway"])  # fmt: skip
                    ok = await ready
            except (OSError, TimeoutError):
                ok = False
            if ok:
                viewers.append(viewer)
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    print(json.dumps({"connected": len(viewers), "failed": failed, "seconds": time.perf_counter() - started}),
          flush=True)  # fmt: skip
    try:
        async with asyncio.timeout(300):
            await loop.run_in_executor(None, sys.stdin.readline)
    except TimeoutError:
        pass
    alive = sum(1 for v in viewers if v.transport is not None and not v.transport.is_closing())
    for viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.close()
    print(json.dumps({"alive_at_end": alive}), flush=True)


async def viewers_run(
    stack: BenchStack, key: str, total: int, workers: int
) -> tuple[dict[str, float], list[subprocess.Popen[str]]]:
    """Start the viewer processes; once all report, the figures (the processes keep their viewers)."""
    share = [total // workers + (1 if i < total % workers else 0) for i in range(workers)]
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--viewer-worker", str(n), key], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in share]  # fmt: skip
    reading = asyncio.gather(*(asyncio.to_thread(p.stdout.readline) for p in procs if p.stdout))
    reports = await asyncio.wait_for(reading, 180)  # each viewer has 30 s; the whole join 180 s
    seconds = time.perf_counter() - started
    parsed = [json.loads(r) for r in reports]
    return {"connected": sum(r["connected"] for r in parsed), "failed": sum(r["failed"] for r in parsed),
            "seconds": seconds}, procs  # fmt: skip


def stop_viewers(procs: list[subprocess.Popen[str]]) -> int:
    alive = 0
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        alive += json.loads(proc.stdout.readline() or '{"alive_at_end": 0}')["alive_at_end"]
        proc.wait(timeout=60)
    return alive


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(
            " | ".join(
                cell.ljust(widths[j]) if j == 0 else cell.rjust(widths[j]) for j, cell in enumerate(row)
            )
        )
        if i == 0:
            print("-+-".join("-" * w for w in widths))


async def all_gateways_ready() -> None:
    """Every gateway process behind the shared port answers: 20 readiness checks in a row pass."""
    deadline = time.monotonic() + 60
    # A new connection per check: the kernel picks the process per connection, not per request.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        streak = 0
        while streak < 20:
            async with http.get(f"{GATEWAY}/readyz") as resp:
                streak = streak + 1 if resp.status == 200 else 0
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway processes did not all become ready")
            await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    settings = Settings.from_env("bench")
    async with BenchStack(settings, gateways=args.gateways) as stack:
        await all_gateways_ready()
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        await migrate(pool, "services.gateway")
        _, key, _ = await create_key(pool, "bench-viewer", "viewer")
        await pool.close()
        headers = {"X-API-Key": key}
        r, c = args.requests, args.concurrency
        relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("relay.py")), str(RELAY_PORT),
                                  str(SERVICES["query"])], stdout=subprocess.PIPE, text=True)  # fmt: skip
        profilers = stack.profile(Path(args.profile)) if args.profile else []
        try:
            assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
            one = await paired(headers, 1, r, args.seconds, args.rounds)
            many = await paired(headers, c, r, args.seconds, args.rounds)
        finally:
            relay.terminate()
            relay.wait(timeout=10)
            for spy in profilers:
                spy.send_signal(signal.SIGINT)  # py-spy writes its samples when interrupted
                spy.wait(timeout=30)
        gate1, gatec = one["gateway"], many["gateway"]
        if args.rest_only:
            rest_table(args, one, many)
            return
        gws = [p.pid for name, p in stack.procs.items() if name.startswith("gateway")]
        live = stack.procs["live"].pid
        # Two descriptors per viewer at a gateway process and 1,000 kept for REST: without
        # CAP_SYS_RESOURCE the hard limit on open files (20,000 here) caps the viewers per process;
        # the kernel spreads connections over the processes sharing the port (SO_REUSEPORT)
        # unevenly, so each gets head room of a fifth.
        limit = min(OPEN_FILES, open_files(gws[0]))
        cap = int(len(gws) * (limit - 1000) // 2 / (1.2 if len(gws) > 1 else 1))
        if args.viewers > cap:
            print(
                f"{len(gws)} gateway process(es) may open {limit} files each: {args.viewers:,} viewers -> {cap:,}"
            )
            args.viewers = cap
        rss_before = sum(rss_kib(g) for g in gws), rss_kib(live)
        joined, procs = await viewers_run(stack, key, args.viewers, args.workers)
        try:
            await asyncio.sleep(2)  # let both services settle before reading RSS
            rss_after = sum(rss_kib(g) for g in gws), rss_kib(live)
            held1 = await rest_run(f"{GATEWAY}/v1/teams", headers, 1, r, args.seconds)
            heldc = await rest_run(f"{GATEWAY}/v1/teams", headers, c, r, args.seconds)
        finally:
            alive = stop_viewers(procs)
    n = max(1, joined["connected"])
    rest_table(args, one, many)
    print()
    rows = [(f"{args.viewers:,} idle viewers on /v1/live", "before", "while connected", "ratio")]
    rows.append(("connected / failed", "", f"{joined['connected']:,} / {joined['failed']:,}", ""))
    rows.append(("time to connect all, s", "", f"{joined['seconds']:.1f}", f"{n / joined['seconds']:.0f}/s"))
    for label, i in (("gateway", 0), ("live", 1)):
        per = (rss_after[i] - rss_before[i]) / n
        rows.append((f"{label} RSS MiB (KiB per viewer)", f"{rss_before[i] / 1024:.0f}", f"{rss_after[i] / 1024:.0f}",
                     f"{per:.1f} KiB"))  # fmt: skip
    for label, b, h in (("1 client", gate1, held1), (f"{c} clients", gatec, heldc)):
        rows.append(
            (
                f"REST via gateway, {label}: p50 ms",
                f"{b['p50']:.2f}",
                f"{h['p50']:.2f}",
                f"{h['p50'] / b['p50']:.2f}x",
            )
        )
        rows.append(
            (
                f"REST via gateway, {label}: p99 ms",
                f"{b['p99']:.2f}",
                f"{h['p99']:.2f}",
                f"{h['p99'] / b['p99']:.2f}x",
            )
        )
    rows.append(("viewers still connected at the end", "", f"{alive:,}", ""))
    table(rows)
    runs = [*one.values(), *many.values(), held1, heldc]
    failures = sum(int(x["failed"]) for x in runs)
    print(f"\nREST failures: {failures}; targets: <= 1 ms p50 added, {args.viewers:,} viewers < 30 s, "
          "REST p99 unaffected, <= 20 KB per idle connection at each hop")  # fmt: skip


def rest_table(
    args: argparse.Namespace, one: dict[str, dict[str, float]], many: dict[str, dict[str, float]]
) -> None:
    c = args.concurrency
    print(f"\n== gateway benchmark ({os.cpu_count()} cores; loopback; {args.gateways} gateway process(es) on one "
          f"port; {args.workers} viewer processes; {args.rounds} rotating rounds per REST run)\n")  # fmt: skip
    rows = [("GET /v1/teams (API key, rate-limited)", "direct to query", "raw TCP relay", "through gateway",
             "gateway added", "gateway - relay")]  # fmt: skip
    for label, runs in (("1 client", one), (f"{c} clients", many)):
        d, r, g = runs["direct"], runs["relay"], runs["gateway"]
        for q in ("p50", "p99"):
            rows.append((f"{label}: {q} ms", f"{d[q]:.2f}", f"{r[q]:.2f}", f"{g[q]:.2f}",
                         f"+{g[q] - d[q]:.2f} ms", f"+{g[q] - r[q]:.2f} ms"))  # fmt: skip
        rows.append((f"{label}: requests/s", f"{d['rps']:.0f}", f"{r['rps']:.0f}", f"{g['rps']:.0f}",
                     f"{g['rps'] / d['rps']:.2f}x", f"{g['rps'] / r['rps']:.2f}x"))  # fmt: skip
    table(rows)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--gateways", type=int, default=2, help="gateway processes sharing the port")
    parser.add_argument("--workers", type=int, default=2, help="viewer processes")
    parser.add_argument("--concurrency", type=int, default=16, help="REST clients of the concurrent runs")
    parser.add_argument("--requests", type=int, default=3000, help="at most this many requests per REST run")
    parser.add_argument("--seconds", type=float, default=20.0, help="and at most this long")
    parser.add_argument(
        "--rounds", type=int, default=10, help="alternating direct/gateway rounds per REST run"
    )
    parser.add_argument("--rest-only", action="store_true", help="only the REST comparison, no viewers")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample every service with py-spy during the REST runs (collapsed stacks)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--viewer-worker":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        asyncio.run(viewer_worker(int(sys.argv[2]), sys.argv[3], in_flight=50))
    else:
        asyncio.run(main(parse()))
