"""The read model on real PostgreSQL: revisions, corrections, deletes, partitions, filters."""

from __future__ import annotations

from typing import Any

import pytest

from services.query import plays
from services.query.projection import Projector
from shared.db import Pools
from shared.errors import ApiError
from tests.factories import corrected, deleted, game, play, recorded


async def _rows(pools: Pools, game_id: str) -> list[Any]:
    return await pools.primary.fetch("SELECT * FROM plays WHERE game_id = $1 ORDER BY sequence", game_id)


async def test_newest_revision_wins_whatever_the_order(db: Any) -> None:
    g, projector = game(), Projector(db)
    assert await projector.apply([recorded(g, play(yards_gained=3))]) == 1
    assert await projector.apply([recorded(g, play(yards_gained=3))]) == 0  # redelivery changes nothing
    assert await projector.apply([corrected(g, play(yards_gained=12), revision=3)]) == 1
    assert await projector.apply([corrected(g, play(yards_gained=5), revision=2)]) == 0  # late, older
    [row] = await _rows(db.get(), g.game_id)
    assert (row["revision"], row["yards_gained"], row["sack"], row["pressure"]) == (3, 12, True, True)


async def test_a_delete_is_a_tombstone_that_older_revisions_cannot_undo(db: Any) -> None:
    g, projector = game(), Projector(db)
    await projector.apply([recorded(g, play()), recorded(g, play(play_id="52", sequence=2))])
    await projector.apply([deleted(g, "51", revision=2)])
    await projector.apply([recorded(g, play())])
    listed = await plays.list_plays(db.get().replica, {"game_id": g.game_id})
    assert [p["play_id"] for p in listed["items"]] == [f"{g.game_id}:52"]
    with pytest.raises(ApiError) as err:
        await plays.get_play(db.get().replica, f"{g.game_id}:51")
    assert err.value.status == 404


async def test_one_batch_keeps_the_highest_revision_of_each_play(db: Any) -> None:
    g, projector = game(), Projector(db)
    batch = [corrected(g, play(yards_gained=9), revision=2), recorded(g, play(yards_gained=1))]
    assert await projector.apply(batch) == 1
    [row] = await _rows(db.get(), g.game_id)
    assert (row["revision"], row["yards_gained"]) == (2, 9)


async def test_seasons_get_their_own_partitions(db: Any) -> None:
    projector = Projector(db)
    await projector.apply([recorded(game("2010091200", season=2010), play()),
                           recorded(game("2019090800", season=2019), play())])  # fmt: skip
    parts = await db.get().primary.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = 'plays' AND p.relnamespace = current_schema()::regnamespace"
    )
    assert {r["relname"] for r in parts} == {"plays_2010", "plays_2019"}


async def test_filters_and_keyset_pages(db: Any) -> None:
    g, projector = game(), Projector(db)
    await projector.apply([recorded(g, play(play_id=str(100 + i), sequence=i, down=1 + i % 3, yards_to_go=i))
                           for i in range(1, 8)])  # fmt: skip
    pool = db.get().replica
    seen: list[str] = []
    cursor = None
    while True:
        query = {
            "game_id": g.game_id,
            "limit": "3",
            "sort": "oldest",
            **({"cursor": cursor} if cursor else {}),
        }
        page = await plays.list_plays(pool, query)
        seen += [p["play_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{g.game_id}:{100 + i}" for i in range(1, 8)]
    third = await plays.list_plays(pool, {"team": "car", "down": "3", "ytg_min": "2", "ytg_max": "6"})
    assert [p["yards_to_go"] for p in third["items"]] == [5, 2]
    by_player = await plays.list_plays(pool, {"player_id": "00-0030000", "sack": "true", "limit": "500"})
    assert len(by_player["items"]) == 7


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({"down": "5"}, ["down"]),
        ({"ytg_min": "8", "ytg_max": "2"}, ["ytg_min"]),
        ({"colour": "red", "limit": "501"}, ["colour", "limit"]),
        ({"season_type": "XMAS", "touchdown": "maybe"}, ["season_type", "touchdown"]),
        ({"cursor": "not-a-cursor"}, ["cursor"]),
    ],
)
async def test_bad_parameters_name_each_field(db: Any, query: dict[str, str], fields: list[str]) -> None:
    with pytest.raises(ApiError) as err:
        await plays.list_plays(db.get().replica, query)
    assert err.value.status == 400
    assert [d["field"] for d in err.value.details] == fields
