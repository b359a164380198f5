"""Exact aggregates on real PostgreSQL: redelivery, corrections, deletes, half sacks, rankings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from services.analytics import queries
from services.analytics.store import AggregateStore
from shared.config import Settings
from shared.db import postgres_dependency
from shared.errors import ApiError
from shared.events import PlayEventBatch, encoder
from tests.factories import corrected, deleted, event_dict, game, play, recorded

RUSHER = "00-0030000"


@dataclass
class Harness:
    """The store under test and its pool for reading back."""

    store: AggregateStore
    pool: Any

    async def apply(self, events: list[Any]) -> int:
        return await self.store.apply(events)

    async def generation(self, tag: str = "all") -> int:
        """How often the answer cache's generation of `tag` moved."""
        return int(await self.pool.fetchval("SELECT coalesce(max(gen), 0) FROM analytics_generations WHERE tag = $1",
                                            tag))  # fmt: skip


@pytest.fixture
async def store(database_url: str, make_settings: Callable[..., Settings], started: Any) -> Harness:
    dep = postgres_dependency(
        make_settings("analytics", DATABASE_URL=database_url), migrations="services.analytics"
    )
    await started(dep)
    return Harness(store=AggregateStore(dep), pool=dep.get().primary)


async def _defense(store: Harness, player: str = RUSHER, **query: str) -> dict[str, Any]:
    stats = await queries.player_stats(store.pool, player, {"season": "2019", **query})
    return stats["defense"]  # type: ignore[no-any-return]


async def test_redelivery_counts_once(store: Harness) -> None:
    g = game()
    batch = [recorded(g, play("1", 1)), recorded(g, play("2", 2, stat_id=84))]
    assert await store.apply(batch) == 2
    assert await store.apply(batch) == 0
    assert await store.apply(list(reversed(batch))) == 0
    d = await _defense(store)
    assert (d["sacks"], d["snaps"], d["pressures"]) == (1.5, 2, 2)
    assert (await store.generation(), await store.generation("season:2019")) == (1, 1)  # redeliveries: none


async def test_a_correction_moves_the_credit_exactly(store: Harness) -> None:
    g = game()
    await store.apply([recorded(g, play("1", 1))])
    await store.apply([corrected(g, play("1", 1, stat_id=110), revision=2)])  # the sack was a QB hit
    await store.apply([recorded(g, play("1", 1))])  # the stale original arrives again: ignored
    d = await _defense(store)
    assert (d["sacks"], d["qb_hits"], d["pressures"], d["snaps"]) == (0, 1, 1, 1)


async def test_a_delete_takes_the_play_out_of_every_total(store: Harness) -> None:
    g = game()
    await store.apply([recorded(g, play("1", 1)), recorded(g, play("2", 2, stat_id=79))])
    await store.apply([deleted(g, "1", revision=2)])
    d = await _defense(store)
    assert (d["sacks"], d["tackles"], d["snaps"]) == (0, 1, 1)
    leaders = await queries.pressure_leaders(store.pool, {"min_snaps": "1"})
    assert leaders["items"][0]["pressures"] == 0


async def test_week_filters_and_pressure_leaders(store: Harness) -> None:
    await store.apply([recorded(game("g1", week=1), play("1", 1)),
                       recorded(game("g2", week=2), play("1", 1, stat_id=79)),
                       recorded(game("g2", week=2), play("2", 2, defender="00-0040000", stat_id=110)),
                       recorded(game("g2", week=2), play("3", 3, defender="00-0040000", stat_id=79, down=1))])  # fmt: skip
    assert (await _defense(store, week_min="2"))["sacks"] == 0
    assert (await _defense(store, week_max="1"))["sacks"] == 1
    ranked = await queries.pressure_leaders(store.pool, {"min_snaps": "2", "season": "2019"})
    assert [(r["player_id"], r["snaps"], r["pressures"], r["pressure_rate"]) for r in ranked["items"]] == [
        (RUSHER, 2, 1, 0.5),
        ("00-0040000", 2, 1, 0.5),
    ]
    third_down = await queries.pressure_leaders(store.pool, {"min_snaps": "1", "down": "3"})
    assert {r["player_id"]: r["snaps"] for r in third_down["items"]} == {RUSHER: 2, "00-0040000": 1}
    top = await queries.leaders(store.pool, {"stat": "defense.sacks", "season": "2019"})
    assert top["items"][0] == {
        "player_id": RUSHER,
        "name": "A.Rusher",
        "team": "LA",
        "position": None,
        "value": 1,
    }


async def test_bad_queries_are_400s(store: Harness) -> None:
    with pytest.raises(ApiError) as err:
        await queries.leaders(store.pool, {"stat": "defense.vibes"})
    assert (err.value.status, err.value.details[0]["field"]) == (400, "stat")
    with pytest.raises(ApiError) as err:
        await queries.pressure_leaders(store.pool, {"min_snaps": "-1", "ytg_min": "9", "ytg_max": "3"})
    assert [d["field"] for d in err.value.details] == ["min_snaps", "ytg_min"]
    with pytest.raises(ApiError) as err:
        await queries.player_stats(store.pool, "00-nobody", {})
    assert err.value.status == 404


async def test_an_unknown_stat_id_counts_nothing(store: Harness) -> None:
    await store.apply([recorded(game(), play("1", 1, stat_id=999))])
    d = await _defense(store)
    assert (d["sacks"], d["snaps"], d["pressures"]) == (0, 1, 0)


async def test_records_single_or_batched_and_a_bad_one_raises_before_any_write(store: Harness) -> None:
    g = game()
    good = [encoder.encode(recorded(g, play("1", 1))),
            encoder.encode(PlayEventBatch(game_id=g.game_id, events=[recorded(g, play("2", 2, stat_id=84)),
                                                                     deleted(g, "1", revision=2)]))]  # fmt: skip
    bad = msgspec.json.encode({**event_dict(), "revision": 0})
    with pytest.raises(msgspec.ValidationError):  # the consumer loop sends such a record to the DLQ
        await store.store.apply_records([*good, bad])
    assert store.store.applied == 0
    assert await store.store.apply_records(good) == 2  # play 1 arrives deleted: nothing counted for it
    d = await _defense(store)
    assert (d["sacks"], d["snaps"], d["pressures"]) == (0.5, 1, 1)


async def test_a_large_batch_applied_in_two_halves_counts_exactly_once(store: Harness) -> None:
    # Split below the usual size: four games of one rusher over four weeks, a correction and a
    # delete among them, applied as halves; then the whole batch is redelivered.
    store.store.split_at = 2
    games = [game(f"20190{9 + w // 4}{w:02d}00", week=w) for w in range(1, 5)]
    batch: list[Any] = []
    for g in games:
        batch += [recorded(g, play("1", 1)), recorded(g, play("2", 2, stat_id=84))]
    batch += [corrected(games[0], play("1", 1, stat_id=110), revision=2), deleted(games[1], "2", revision=2)]
    assert await store.apply(batch) == 8
    assert await store.apply(batch) == 0
    d = await _defense(store)
    # Sacks: 3 whole (game 0's became a QB hit) + 3 halves (game 1's was deleted) = 4.5.
    assert (d["sacks"], d["qb_hits"], d["snaps"]) == (4.5, 1, 7)
    weekly = [(await _defense(store, week_min=str(w), week_max=str(w)))["sacks"] for w in range(1, 5)]
    assert weekly == [0.5, 1.0, 1.5, 1.5]
    assert await store.generation() == 2  # once in each half's transaction; the redelivery: none
