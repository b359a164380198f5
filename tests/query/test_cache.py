"""The query answer cache on real PostgreSQL: never stale after a batch commits, scoped to what a
batch changed, one computation for concurrent misses, keys from the parsed parameters, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from services.query.keys import POSTGRES
from services.query.projection import Projector
from shared.answers import AnswerCache
from tests.factories import corrected, game, play, recorded


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "snapline_answer_cache_requests_total", {"cache": "query", "outcome": outcome}
    )
    return value or 0.0


class Outcomes:
    """The cache's outcome counters since it was made."""

    def __init__(self) -> None:
        self.start = {o: _count(o) for o in ("hit", "miss", "coalesced")}

    def __call__(self) -> dict[str, float]:
        return {o: _count(o) - v for o, v in self.start.items()}


async def _json(client: TestClient[Any, Any], path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _projector(client: TestClient[Any, Any]) -> Projector:
    return Projector(client.server.app[POSTGRES])  # type: ignore[attr-defined]


async def test_an_answer_is_never_stale_once_the_batch_has_committed(query: TestClient[Any, Any]) -> None:
    g, projector = game(), _projector(query)
    await projector.apply([recorded(g, play(yards_gained=3, home_score=0, away_score=0))])
    path = f"/v1/plays?game_id={g.game_id}"
    assert (await _json(query, path))["items"][0]["yards_gained"] == 3
    seen = Outcomes()
    assert (await _json(query, path))["items"][0]["yards_gained"] == 3
    assert seen()["hit"] == 1  # kept
    for revision, yards in ((2, 12), (3, 4), (4, 30)):
        await projector.apply([corrected(g, play(yards_gained=yards), revision=revision)])
        # The very next read, as soon as the batch committed: the corrected play.
        assert (await _json(query, path))["items"][0]["yards_gained"] == yards


async def test_a_batch_leaves_other_games_and_seasons_answers_kept(query: TestClient[Any, Any]) -> None:
    projector = _projector(query)
    old, a, b = game("2018090900", season=2018), game("2019090800"), game("2019091500", week=2)
    await projector.apply([recorded(old, play()), recorded(a, play()), recorded(b, play())])
    paths = [f"/v1/games/{b.game_id}", "/v1/plays?season=2018", f"/v1/plays?game_id={b.game_id}"]
    for path in paths:
        await _json(query, path)
    seen = Outcomes()
    await projector.apply([corrected(a, play(yards_gained=20), revision=2)])  # game a, season 2019
    for path in paths:
        await _json(query, path)
    assert seen() == {"hit": 3, "miss": 0, "coalesced": 0}
    await _json(query, f"/v1/games/{a.game_id}")
    await _json(query, "/v1/plays?season=2019")
    assert seen()["miss"] == 2


async def test_fifty_concurrent_misses_run_one_computation(query: TestClient[Any, Any]) -> None:
    g, projector = game(), _projector(query)
    await projector.apply([recorded(g, play(play_id=str(i), sequence=i)) for i in range(1, 41)])
    seen = Outcomes()
    answers = await asyncio.gather(*(_json(query, "/v1/plays?season=2019&limit=500") for _ in range(50)))
    assert all(a == answers[0] for a in answers) and len(answers[0]["items"]) == 40
    counts = seen()
    assert counts["miss"] == 1, counts
    assert counts["hit"] + counts["coalesced"] == 49, counts


async def test_the_same_question_in_another_spelling_is_one_entry(query: TestClient[Any, Any]) -> None:
    g = game()
    await _projector(query).apply([recorded(g, play())])
    await _json(query, "/v1/plays?season=2019&team=CAR&down=3,2")
    seen = Outcomes()
    await _json(query, "/v1/plays?down=2,3&team=car&season=2019")
    assert seen()["hit"] == 1


async def test_a_failed_computation_is_not_kept_and_every_waiter_gets_its_error(
    query: TestClient[Any, Any],
) -> None:
    missing = [await query.get("/v1/games/nope") for _ in range(3)]
    assert [r.status for r in missing] == [404, 404, 404]
    assert (await missing[0].json())["error"]["code"] == "not_found"


async def test_the_bounds_hold_least_recently_used_out() -> None:
    cache = AnswerCache("bounds-test", "unused", max_entries=3, max_bytes=250, max_entry_bytes=120)

    class Pool:
        async def fetch(self, sql: str, tags: list[str]) -> list[dict[str, Any]]:
            return [{"tag": t, "gen": 1} for t in tags]

    computed: list[str] = []

    def body(key: str, size: int) -> Callable[[], Any]:
        async def compute() -> bytes:
            computed.append(key)
            return b"x" * size

        return compute

    pool: Any = Pool()
    for key in ("a", "b", "c"):
        await cache.get(pool, key, ["all"], body(key, 50))
    await cache.get(pool, "a", ["all"], body("a", 50))  # a hit: now the most recent
    await cache.get(pool, "d", ["all"], body("d", 50))  # four entries: b, the least recent, goes
    assert len(cache) == 3
    await cache.get(pool, "b", ["all"], body("b", 50))
    assert computed == ["a", "b", "c", "d", "b"]
    await cache.get(pool, "big", ["all"], body("big", 121))  # over the per-entry bound: not kept
    assert len(cache) == 3
    await cache.get(pool, "e", ["all"], body("e", 110))  # four entries again: a goes (d, b, e: 210 bytes)
    assert len(cache) == 3
    await cache.get(pool, "f", ["all"], body("f", 120))  # d goes for the count, b for the bytes
    assert len(cache) == 2
    await cache.get(pool, "e", ["all"], body("e", 110))
    assert computed[-1] == "f"  # e is still kept


async def test_no_entries_turns_the_cache_off() -> None:
    cache = AnswerCache("off-test", "unused", max_entries=0, max_bytes=0, max_entry_bytes=0)
    calls = 0

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        return b"{}"

    pool: Any = None  # never asked for generations
    assert [await cache.get(pool, "k", ["all"], compute) for _ in range(3)] == [b"{}"] * 3
    assert calls == 3 and len(cache) == 0


async def test_instances_share_answers_one_computes_while_the_others_wait(
    query: TestClient[Any, Any], topics: Any, make_settings: Callable[..., Any], database_url: str
) -> None:
    """Two query instances (same database, same Redis prefix): 25 concurrent misses at each, one
    computation in all; a later batch makes both compute afresh, never reuse the old answer."""
    from services.query.app import create_app
    from tests.servers import ServiceServer

    other_app = create_app(make_settings("query", DATABASE_URL=database_url))
    other: TestClient[Any, Any] = TestClient(ServiceServer(other_app))
    await other.start_server()
    try:
        await asyncio.wait_for(other_app[POSTGRES].wait(), 30)
        g, projector = game(), _projector(query)
        await projector.apply([recorded(g, play(play_id=str(i), sequence=i)) for i in range(1, 31)])
        path = "/v1/plays?season=2019&limit=200"
        before = {o: _count(o) for o in ("miss", "shared_hit", "waited", "hit", "coalesced")}
        answers = await asyncio.gather(*(_json(c, path) for c in (query, other) for _ in range(25)))
        assert all(a == answers[0] for a in answers) and len(answers[0]["items"]) == 30
        counts = {o: _count(o) - v for o, v in before.items()}
        assert counts["miss"] == 1, counts  # one computation across both instances
        assert counts["shared_hit"] + counts["waited"] == 1, counts  # the other instance's one fill
        assert counts["hit"] + counts["coalesced"] == 48, counts
        await projector.apply([corrected(g, play(play_id="1", sequence=1, yards_gained=41), revision=2)])
        fresh = await _json(other, path)
        assert len(fresh["items"]) == 30, fresh
        assert sorted(p["yards_gained"] for p in fresh["items"])[-1] == 41, fresh["items"][0]
    finally:
        await other.close()


async def test_query_answers_without_redis_and_stays_ready(
    topics: Any, make_settings: Callable[..., Any], database_url: str
) -> None:
    from services.query.app import create_app
    from tests.servers import ServiceServer

    app = create_app(make_settings("query", DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:1/0"))
    client: TestClient[Any, Any] = TestClient(ServiceServer(app))
    await client.start_server()
    try:
        await asyncio.wait_for(app[POSTGRES].wait(), 30)
        g = game()
        await _projector(client).apply([recorded(g, play(yards_gained=9))])
        errors = _count("error")
        assert (await _json(client, f"/v1/plays?game_id={g.game_id}"))["items"][0]["yards_gained"] == 9
        assert _count("error") == errors + 1  # computed here, Redis being away
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 200 and body["status"] == "ready", body
        assert body["checks"]["redis"] != "ok" and body["checks"]["postgres"] == "ok"
    finally:
        await client.close()
