"""Reconnect storms and churn: thousands resuming at once, and viewers moving between two live
processes while one of them is killed, against real Kafka and Redis."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from shared.config import Settings
from tests.live.conftest import StartLive
from tests.live.support import produce, receive, recorded

STORM = 2000


async def _resume(ws: aiohttp.ClientWebSocketResponse, game_id: str, after_seq: int, upto: int) -> list[int]:
    """Resume and collect the seqs of the game's plays until `upto`."""
    await ws.send_json({"op": "resume", "game_id": game_id, "after_seq": after_seq})
    reply = await receive(ws, ("resumed", "reload", "error"), seconds=60)
    assert reply["type"] == "resumed", reply
    seqs: list[int] = []
    while (seqs[-1] if seqs else after_seq) < upto:
        seqs.append((await receive(ws, ("play",), seconds=60))["seq"])
    return seqs


async def test_two_thousand_viewers_resuming_at_once_all_get_their_messages(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    # A deploy's reconnect storm: every viewer comes back at the same moment and resumes from its
    # own last seq. Each must get `resumed` and exactly the messages it missed, in order.
    client = await start_live()
    game_id = f"storm{unique}"
    await produce(producer, live_settings, *(recorded(game_id, n) for n in range(1, 41)))
    watcher = await client.ws_connect("/v1/live")
    assert len(await _resume(watcher, game_id, 0, 40)) == 40  # sequenced
    rng = random.Random(unique)
    starts = [rng.randrange(0, 41) for _ in range(STORM)]
    connector = aiohttp.TCPConnector(limit=0)  # the test's own client: no pool cap of its own
    async with aiohttp.ClientSession(str(client.make_url("")), connector=connector) as http:
        sockets = await asyncio.gather(*(http.ws_connect("/v1/live") for _ in range(STORM)))
        results = await asyncio.gather(
            *(_resume(ws, game_id, s, 40) for ws, s in zip(sockets, starts, strict=True))
        )
        assert [r == list(range(s + 1, 41)) for r, s in zip(results, starts, strict=True)] == [True] * STORM
        # And all of them follow the game live afterwards.
        await produce(producer, live_settings, recorded(game_id, 41))
        latest = await asyncio.gather(*(receive(ws, ("play",), seconds=60) for ws in sockets))
        assert {m["seq"] for m in latest} == {41}
        await asyncio.gather(*(ws.close() for ws in sockets))
    await watcher.close()


# --- two live processes, one killed ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live_processes(live_settings: Settings) -> AsyncIterator[Callable[[], Any]]:
    """Start `python -m services.live` processes on this test's prefix and group; all are stopped
    at the end (by their pid)."""
    started: list[asyncio.subprocess.Process] = []

    async def start() -> tuple[asyncio.subprocess.Process, str]:
        port = _free_port()
        env = dict(os.environ, KAFKA_TOPIC_PREFIX=live_settings.kafka.topic_prefix, LOG_JSON="true",
                   LIVE_CONSUMER_GROUP=live_settings.consumer_group, LIVE_PORT=str(port))  # fmt: skip
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.live", env=env,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                try:
                    async with http.get(f"{url}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)  # polling the process's readiness, not synchronising on it
        return proc, url

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


class Viewer:
    """A viewer of several games that reconnects to whichever instance is up and resumes each game
    from the last seq it has, recording every play message it is shown."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str], games: list[str]) -> None:
        self.http, self.urls, self.games = http, urls, games
        self.seen: dict[str, list[int]] = {g: [] for g in games}
        self.reconnects = 0
        self.problems: list[dict[str, Any]] = []

    async def run(self, done: Callable[[Viewer], bool]) -> None:
        attempt = 0
        while not done(self):
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                async with self.http.ws_connect(f"{url}/v1/live", heartbeat=None) as ws:
                    for g in self.games:
                        last = self.seen[g][-1] if self.seen[g] else 0
                        await ws.send_json({"op": "resume", "game_id": g, "after_seq": last})
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        data = msg.json()
                        if data["type"] == "reload" and (data["reason"], data["seq"]) != ("unknown_game", 0):
                            self.problems.append(data)  # the stream holds everything here
                            return
                        if data["type"] == "play":
                            self.seen[data["game_id"]].append(data["seq"])
                            if done(self):
                                return
            except (aiohttp.ClientError, ConnectionError):
                pass
            self.reconnects += 1
            await asyncio.sleep(0.05)  # back off before reconnecting, as a client does


async def test_viewers_keep_gap_free_streams_while_an_instance_is_killed(
    live_processes: Callable[[], Any], producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    (first, first_url), (_, second_url) = await live_processes(), await live_processes()
    games = [f"kill{unique}-{i}" for i in range(4)]  # keys over several partitions
    plays_per_game = 60
    async with aiohttp.ClientSession() as http:
        # Half the viewers start on each instance; each can fail over to the other.
        viewers = [
            Viewer(http, [first_url, second_url][:: 1 if i % 2 == 0 else -1], games) for i in range(40)
        ]

        def done(v: Viewer) -> bool:
            return all(len(s) >= plays_per_game for s in v.seen.values())

        tasks = [asyncio.create_task(v.run(done)) for v in viewers]
        for n in range(1, plays_per_game + 1):
            await produce(producer, live_settings, *(recorded(g, n) for g in games))
            if n == plays_per_game // 3:
                # Wait until every viewer has seen this far, then kill one instance outright.
                async with asyncio.timeout(60):
                    while not all(min(len(s) for s in v.seen.values()) >= n for v in viewers):
                        await asyncio.sleep(0.05)  # polling the viewers' progress
                first.send_signal(signal.SIGKILL)
                await first.wait()
        async with asyncio.timeout(120):  # the group hands the killed instance's partitions over
            await asyncio.gather(*tasks)
    assert [v.problems for v in viewers if v.problems] == []
    for v in viewers:
        for g in games:
            assert v.seen[g] == list(range(1, plays_per_game + 1)), (g, v.seen[g][:5], len(v.seen[g]))
    moved = [v for v in viewers if v.reconnects]
    assert len(moved) >= 20  # those on the killed instance came back through the other one
