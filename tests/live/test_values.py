"""EP/WP on live play messages, against real Kafka and Redis: a real game fed live carries the
values the model gives the whole game (each snap's own "before" values at once, the "after"
values of the snap before it in `previous`), as query stores them."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from services.ingest import gamecenter as gc
from services.live.messages import views_of
from services.live.values import LiveValues
from shared import epwp
from shared.config import Settings
from shared.events import Game, encoder
from tests.ingest.test_gamecenter import WHEEL
from tests.live.conftest import StartLive
from tests.live.support import plays, produce, subscribe

GAME = "2018090600"


def _real_game(game_id: str) -> list[Any]:
    wheel = zipfile.ZipFile(WHEEL)
    reference = (
        gc.load_schedule(wheel.read("nflgame/schedule.json")),
        gc.load_players(wheel.read("nflgame/players.json")),
    )
    events = gc.game_events(
        f"{GAME}.json.gz", wheel.read(f"nflgame/gamecenter-json/{GAME}.json.gz"), *reference
    )
    # Fed again under a game id of the test's own, as `snapline replay` does.
    game = Game(**{**msgspec.structs.asdict(events[0].game), "game_id": game_id})
    return [msgspec.structs.replace(e, game=game, event_id=f"{game_id}-{e.play.play_id}") for e in events]


async def test_a_real_game_fed_live_carries_the_models_values(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str, epwp_model: Path
) -> None:
    settings = dataclasses.replace(live_settings, model_path=str(epwp_model))
    client = await start_live(settings)
    ready = await (await client.get("/readyz")).json()
    assert ready["details"]["epwp_model"].startswith("loaded epwp-")
    game_id = f"V{unique}"
    events = _real_game(game_id)[:60]
    model = epwp.Model.load(epwp_model)
    full = model.game_values(events[0].game.home, [e.play for e in events])
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)
    await produce(producer, live_settings, *events)
    got = await plays(ws, len(events))
    by_id = {m["play_id"]: m for m in got}
    valued = [(e, v) for e, v in zip(events, full, strict=True) if v is not None]
    assert len(valued) > 30
    for (event, value), nxt in zip(valued, [*valued[1:], None], strict=True):
        message = by_id[f"{game_id}:{event.play.play_id}"]
        assert (message["ep_before"], message["wp_before"]) == (value.ep_before, value.wp_before)
        # Its own after-values only when the play itself settles them (a score), else null for now.
        assert message["ep_after"] in (None, value.ep_after)
        if nxt is not None:
            previous = by_id[f"{game_id}:{nxt[0].play.play_id}"]["previous"]
            assert previous == {"play_id": message["play_id"], "ep_after": value.ep_after, "epa": value.epa,
                                "wp_after": value.wp_after}  # fmt: skip
    kickoff = by_id[f"{game_id}:{events[0].play.play_id}"]
    assert "ep_before" not in kickoff  # a kickoff has no scrimmage situation
    await ws.close()


def test_a_game_is_let_go_once_final_and_a_late_joiner_values_from_what_it_saw(
    epwp_model: Path, unique: str
) -> None:
    events = views_of(encoder.encode(e) for e in _real_game(f"T{unique}"))
    values = LiveValues(epwp.ModelFile(epwp_model))
    assert values.models.refresh()
    extras = [values.extras([e])[0] for e in events]
    assert sum(1 for x in extras if x and x.get("ep_before") is not None) > 100
    assert not values._games  # the final play let the game go
    # An instance that sees the game from its 40th play on (a restart): no values for that play
    # (the score before it is unknown), the right ones from the next on.
    late = LiveValues(epwp.ModelFile(epwp_model))
    late.models.refresh()
    start = next(i for i in range(40, len(events)) if epwp.valued(events[i].play))
    first, *rest = [late.extras([e])[0] for e in events[start:]]
    assert first == dict(epwp.EMPTY_VALUES)
    whole = [x for x in extras[start + 1 :]]
    assert [x and x.get("ep_before") for x in rest] == [x and x.get("ep_before") for x in whole]
