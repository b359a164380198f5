"""Reads on a real streaming replica (pg_basebackup -R of a private primary): they go to the
replica while it answers, and to the primary when it is stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from services.query.app import create_app
from services.query.keys import POSTGRES
from services.query.projection import Projector
from shared.config import Settings
from tests.factories import game, play, recorded
from tests.infra import PrivatePostgres, PrivateReplica
from tests.servers import ServiceServer


async def _replayed(replica: PrivateReplica, primary: PrivatePostgres) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    async with asyncio.timeout(30):
        conn = await asyncpg.connect(primary.url)
        try:
            target = await conn.fetchval("SELECT pg_current_wal_lsn()")
        finally:
            await conn.close()
        conn = await asyncpg.connect(replica.url)
        try:
            while await conn.fetchval("SELECT pg_last_wal_replay_lsn() < $1::pg_lsn", target):
                await asyncio.sleep(0.05)
        finally:
            await conn.close()


async def test_reads_go_to_the_replica_and_to_the_primary_when_it_stops(
    topics: Settings, make_settings: Callable[..., Settings]
) -> None:
    async with PrivatePostgres(full_page_writes="on") as primary, PrivateReplica(primary) as replica:
        settings = make_settings("query", DATABASE_URL=primary.url, DATABASE_REPLICA_URL=replica.url)
        app = create_app(settings)
        client: TestClient[Any, Any] = TestClient(ServiceServer(app))
        await client.start_server()
        try:
            await asyncio.wait_for(app[POSTGRES].wait(), 30)
            projector = Projector(app[POSTGRES])
            g = game()
            await projector.apply([recorded(g, play(play_id="1", sequence=1))])
            await _replayed(replica, primary)

            async def listed() -> list[str]:
                resp = await client.get(f"/v1/plays?game_id={g.game_id}&limit=500")
                assert resp.status == 200, await resp.text()
                return [p["play_id"] for p in (await resp.json())["items"]]

            assert await listed() == [f"{g.game_id}:1"]
            # The replica stops replaying: a play written now is on the primary only, and the
            # answers (read from the replica) do not have it yet.
            standby = await asyncpg.connect(replica.url)
            await standby.execute("SELECT pg_wal_replay_pause()")
            await projector.apply([recorded(g, play(play_id="2", sequence=2))])
            assert await listed() == [f"{g.game_id}:1"]
            await standby.execute("SELECT pg_wal_replay_resume()")
            await standby.close()
            await _replayed(replica, primary)
            assert await listed() == [f"{g.game_id}:2", f"{g.game_id}:1"]

            # The replica goes away: the same read answers, from the primary, and says so.
            before = (
                REGISTRY.get_sample_value("snapline_postgres_replica_fallbacks_total", {"service": "query"})
                or 0
            )
            await replica.stop()
            await projector.apply([recorded(g, play(play_id="3", sequence=3))])
            assert await listed() == [f"{g.game_id}:3", f"{g.game_id}:2", f"{g.game_id}:1"]
            after = REGISTRY.get_sample_value(
                "snapline_postgres_replica_fallbacks_total", {"service": "query"}
            )
            assert after == before + 1  # then the replica is left alone for a few seconds
            assert await listed() == [f"{g.game_id}:3", f"{g.game_id}:2", f"{g.game_id}:1"]
        finally:
            await client.close()
