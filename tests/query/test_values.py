"""EP/WP stored with every play on real PostgreSQL: a real game's values as the model gives them,
moved by corrections and deletes, filled in by the background pass, served by /v1/plays."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from services.query import values
from services.query.app import create_app
from services.query.keys import POSTGRES
from services.query.projection import Projector, view
from shared import epwp
from shared.events import PlayRecorded
from tests.factories import corrected, deleted, real_games
from tests.servers import ServiceServer

GAME = "2018090600"  # ATL at PHI, the 2018 opener (a season the suite's model held out)
_STORED = (
    "SELECT play_id, sequence, ep_before, ep_after, epa, wp_before, wp_after, value_model FROM plays "
    "WHERE game_id = $1 AND NOT deleted ORDER BY sequence"
)


@pytest.fixture(scope="module")
def events() -> list[PlayRecorded]:
    return real_games(GAME)[GAME]


@pytest.fixture
def models(epwp_model: Path) -> epwp.ModelFile:
    models = epwp.ModelFile(epwp_model)
    assert models.refresh()
    return models


def _expected(models: epwp.ModelFile, events: list[PlayRecorded]) -> dict[str, tuple[Any, ...]]:
    assert models.model is not None
    computed = models.model.game_values(events[0].game.home, [e.play for e in events])
    return {f"{GAME}:{e.play.play_id}": values.columns(v) for e, v in zip(events, computed, strict=True)}


async def _stored(db: Any) -> dict[str, tuple[Any, ...]]:
    rows = await db.get().primary.fetch(_STORED, GAME)
    return {r["play_id"]: tuple(r[c] for c in values.VALUE_COLUMNS) for r in rows}


async def test_every_play_of_a_real_game_is_stored_with_the_models_values(
    db: Any, models: epwp.ModelFile, events: list[PlayRecorded]
) -> None:
    await Projector(db, models=models).apply(events)
    stored = await _stored(db)
    assert stored == _expected(models, events)
    valued = [v for v in stored.values() if v[0] is not None]
    scrimmage = [e for e in events if e.play.down and e.play.play_type in ("pass", "run", "sack")]
    assert len(valued) >= len(scrimmage) > 100
    # The game is final: every valued play knows what came after it.
    assert all(v[1] is not None and v[4] is not None for v in valued)
    rows = await db.get().primary.fetch(_STORED, GAME)
    assert {r["value_model"] for r in rows} == {models.model.version}  # type: ignore[union-attr]


async def test_a_correction_or_a_delete_moves_its_neighbours_values(
    db: Any, models: epwp.ModelFile, events: list[PlayRecorded]
) -> None:
    projector = Projector(db, models=models)
    await projector.apply(events)
    valued = [i for i, e in enumerate(events) if epwp.valued(e.play)]
    stored = await _stored(db)
    # A play in mid-drive: the snap before it is the same side's, and scored nothing.
    pos = next(
        n for n in range(len(valued) // 2, len(valued) - 1)
        if events[valued[n - 1]].play.offense == events[valued[n]].play.offense == events[valued[n + 1]].play.offense
        and stored[f"{GAME}:{events[valued[n - 1]].play.play_id}"][1] == stored[f"{GAME}:{events[valued[n]].play.play_id}"][0]
    )  # fmt: skip
    k = valued[pos]
    before, target, after = events[valued[pos - 1]], events[k], events[valued[pos + 1]]
    key, before_key = f"{GAME}:{target.play.play_id}", f"{GAME}:{before.play.play_id}"
    # The play was 4th and 20 from its own 10, say: its value and the one before it change.
    moved = msgspec.structs.replace(target.play, down=4, yards_to_go=20, yardline_100=90)
    await projector.apply([corrected(target.game, moved, revision=2)])
    fixed = list(events)
    fixed[k] = msgspec.structs.replace(target, play=moved)
    now = await _stored(db)
    assert now == _expected(models, fixed)
    assert now[key][0] != stored[key][0]
    assert now[before_key][1] == now[key][0] != stored[before_key][1]
    # Deleting it: the play before is now followed by the one after.
    await projector.apply([deleted(target.game, target.play.play_id, revision=3)])
    now = await _stored(db)
    assert key not in now
    assert now == _expected(models, [e for i, e in enumerate(events) if i != k])
    assert now[before_key][1] == now[f"{GAME}:{after.play.play_id}"][0]


async def test_games_projected_without_a_model_are_valued_in_the_background(
    db: Any, models: epwp.ModelFile, events: list[PlayRecorded], epwp_artifact: dict[str, Any], tmp_path: Path
) -> None:
    await Projector(db).apply(events)  # no model: no values
    assert all(v == (None,) * 5 for v in (await _stored(db)).values())
    assert await values.backfill(db, models, None) == 1
    assert await _stored(db) == _expected(models, events)
    assert await values.backfill(db, models, None) == 0  # nothing left for this model
    # A new model (another fit) revalues every game; the same model again changes nothing.
    newer = epwp.fit(
        [epwp.GamePlays(2018, events[0].game.home, [e.play for e in events])] * 40, rounds=5, threads=1
    )
    path = tmp_path / "epwp.json"
    epwp.save(newer, path)
    other = epwp.ModelFile(path)
    assert other.refresh()
    assert await values.backfill(db, other, None) == 1
    rows = await db.get().primary.fetch(_STORED, GAME)
    assert {r["value_model"] for r in rows} == {newer["version"]}
    assert await _stored(db) == _expected(other, events)


async def test_history_is_valued_by_the_background_pass_not_in_the_batch(
    db: Any, models: epwp.ModelFile, events: list[PlayRecorded]
) -> None:
    projector = Projector(db, models=models)
    await projector.apply(events)  # valued in the batch (a live feed)
    assert await _stored(db) == _expected(models, events)
    # The same game imported again as history (a bulk import with a correction): left unvalued
    # in the batch, marked for the background pass, which values it.
    target = events[10]
    moved = msgspec.structs.replace(target.play, down=4, yards_to_go=20, yardline_100=90)
    await projector.apply_views([view(corrected(target.game, moved, revision=2))], defer_values={GAME})
    unvalued = await db.get().primary.fetchval("SELECT count(*) FROM games WHERE value_model IS NULL")
    assert unvalued == 1
    assert await values.backfill(db, models, None) == 1
    fixed = list(events)
    fixed[10] = msgspec.structs.replace(target, play=moved)
    assert await _stored(db) == _expected(models, fixed)


async def test_plays_come_with_their_values_and_readyz_names_the_model(
    topics: Any, make_settings: Any, database_url: str, epwp_model: Path, events: list[PlayRecorded]
) -> None:
    settings = make_settings("query", DATABASE_URL=database_url, MODEL_PATH=str(epwp_model))
    app = create_app(settings)
    client: TestClient[Any, Any] = TestClient(ServiceServer(app))
    await client.start_server()
    try:
        await asyncio.wait_for(app[POSTGRES].wait(), 30)
        ready = await (await client.get("/readyz")).json()
        assert ready["details"]["epwp_model"].startswith("loaded epwp-")
        models = epwp.ModelFile(epwp_model)
        models.refresh()
        await Projector(app[POSTGRES], models=models).apply(events)
        resp = await client.get("/v1/plays", params={"game_id": GAME, "sort": "oldest", "limit": "500"})
        assert resp.status == 200
        items = (await resp.json())["items"]
        expected = _expected(models, events)
        assert {i["play_id"]: tuple(i[c] for c in values.VALUE_COLUMNS) for i in items} == expected
    finally:
        await client.close()


async def test_without_a_model_the_service_says_so_and_serves_plays(
    topics: Any, make_settings: Any, database_url: str
) -> None:
    app = create_app(make_settings("query", DATABASE_URL=database_url))
    client: TestClient[Any, Any] = TestClient(ServiceServer(app))
    await client.start_server()
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 200 or body["status"] == "not_ready"  # readiness is about its dependencies
        assert "snapline model fit" in body["details"]["epwp_model"]
    finally:
        await client.close()
