"""The analytics answer cache on real PostgreSQL and Redis: one computation for 50 concurrent
misses, an answer computed by one instance used by another, never stale after a batch commits,
and a batch of one season leaving other seasons' answers kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from services.analytics.app import create_app
from services.analytics.keys import POSTGRES, REDIS
from services.analytics.store import AggregateStore
from shared.config import Settings
from tests.factories import corrected, game, play, recorded
from tests.servers import ServiceServer

Start = Callable[[], Any]
RUSHER = "00-0030000"


@pytest.fixture
async def start(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[Start]:
    """Start analytics instances on one database and Redis prefix; all are closed at the end."""
    settings = make_settings("analytics", DATABASE_URL=database_url)
    clients: list[TestClient[Any, Any]] = []

    async def one() -> TestClient[Any, Any]:
        app = create_app(settings)
        client: TestClient[Any, Any] = TestClient(ServiceServer(app))
        await client.start_server()
        clients.append(client)
        await asyncio.wait_for(app[POSTGRES].wait(), 30)
        await asyncio.wait_for(app[REDIS].wait(), 30)
        return client

    yield one
    for client in clients:
        await client.close()


class Outcomes:
    def __init__(self) -> None:
        self.start = {o: self._count(o) for o in ("hit", "shared_hit", "miss", "coalesced", "waited")}

    @staticmethod
    def _count(outcome: str) -> float:
        labels = {"cache": "analytics", "outcome": outcome}
        return REGISTRY.get_sample_value("snapline_answer_cache_requests_total", labels) or 0.0

    def __call__(self) -> dict[str, float]:
        return {o: self._count(o) - v for o, v in self.start.items()}


def _store(client: TestClient[Any, Any]) -> AggregateStore:
    return AggregateStore(client.server.app[POSTGRES])  # type: ignore[attr-defined]


async def _sacks(client: TestClient[Any, Any], season: int = 2019) -> float:
    resp = await client.get(f"/v1/analytics/players/{RUSHER}/stats", params={"season": str(season)})
    assert resp.status == 200, await resp.text()
    return float((await resp.json())["defense"]["sacks"])


async def test_fifty_concurrent_misses_run_one_computation(start: Start) -> None:
    client = await start()
    await _store(client).apply([recorded(game(), play(play_id=str(i), sequence=i)) for i in range(1, 21)])
    seen = Outcomes()
    path = "/v1/analytics/defense/pressure-leaders"
    answers = await asyncio.gather(
        *(client.get(path, params={"season": "2019", "min_snaps": "1"}) for _ in range(50))
    )
    bodies = [await r.json() for r in answers]
    assert all(r.status == 200 for r in answers) and all(b == bodies[0] for b in bodies)
    counts = seen()
    assert counts["miss"] == 1, counts
    assert counts["hit"] + counts["coalesced"] == 49, counts


async def test_an_answer_one_instance_computed_serves_another(start: Start) -> None:
    first, second = await start(), await start()
    await _store(first).apply([recorded(game(), play())])
    seen = Outcomes()
    assert await _sacks(first) == await _sacks(second) == 1.0
    assert seen()["miss"] == 1 and seen()["shared_hit"] == 1  # the second read it from Redis


async def test_never_stale_after_a_commit_and_other_seasons_stay_kept(start: Start) -> None:
    client = await start()
    store = _store(client)
    old, now = game("2018090900", season=2018), game()
    await store.apply([recorded(old, play()), recorded(now, play())])
    assert (await _sacks(client, 2018), await _sacks(client, 2019)) == (1.0, 1.0)
    seen = Outcomes()
    # The sack was a quarterback hit: the very next read, once the batch committed, says so.
    await store.apply([corrected(now, play(stat_id=110), revision=2)])
    assert await _sacks(client, 2019) == 0.0
    assert await _sacks(client, 2018) == 1.0
    assert seen()["hit"] == 1  # 2018's answer was still good
