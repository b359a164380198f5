"""What one play contributes, worked out by hand for a play that exercises every rule."""

from __future__ import annotations

from typing import Any

from services.analytics.aggregates import contribution, defender_rows, delta, entries
from services.analytics.view import EventView, views_of
from shared.events import Participant, StatCredit, encoder
from tests.factories import deleted, game, play, recorded


def _view(event: Any) -> EventView:
    (view,) = views_of([encoder.encode(event)])
    return view


def _busy_play(**kw: Any) -> Any:
    fields: dict[str, Any] = dict(
        down=2, yards_to_go=10, yards_gained=12, yardline_100=40,
        participants=[Participant(player_id="Q", team="CAR", side="offense", name="Quarter Back"),
                      Participant(player_id="D1", team="LA", side="defense")],
        stats=[StatCredit(stat_id=15, team="CAR", player_id="Q", yards=12),
               StatCredit(stat_id=21, team="CAR", player_id="W", yards=12),
               StatCredit(stat_id=79, team="LA", player_id="D2"),
               StatCredit(stat_id=84, team="LA", player_id="D1", yards=-3),
               StatCredit(stat_id=84, team="LA", player_id="D1", yards=-3),
               StatCredit(stat_id=110, team="LA", player_id="D3"),
               StatCredit(stat_id=999, team="LA", player_id="D4"),  # unknown: counts nothing, still a defender
               StatCredit(stat_id=68, team="LA")],  # a team credit
    )  # fmt: skip
    fields.update(kw)
    return play("9", 9, **fields)


def test_a_busy_play_by_hand() -> None:
    view = _view(recorded(game(), _busy_play()))
    assert entries(view) == {
        ("player", "Q", "passing.attempts"): 1.0, ("player", "Q", "passing.completions"): 1.0,
        ("player", "Q", "passing.yards"): 12.0,
        ("player", "W", "receiving.receptions"): 1.0, ("player", "W", "receiving.yards"): 12.0,
        ("player", "D2", "defense.tackles"): 1.0, ("player", "D1", "defense.sacks"): 1.0,
        ("player", "D3", "defense.qb_hits"): 1.0,
        ("player", "D1", "defense.snaps"): 1.0, ("player", "D2", "defense.snaps"): 1.0,
        ("player", "D3", "defense.snaps"): 1.0, ("player", "D4", "defense.snaps"): 1.0,
        ("player", "D1", "defense.pressures"): 1.0, ("player", "D3", "defense.pressures"): 1.0,
        ("team", "CAR", "offense.plays"): 1.0, ("team", "CAR", "offense.yards"): 12.0,
        ("team", "CAR", "offense.successes"): 1.0, ("team", "CAR", "offense.passes"): 1.0,
    }  # fmt: skip
    assert contribution(view)[("player", "Q", 2019, "REG", 1, "passing.yards")] == 12.0
    assert len(contribution(view)) == len(entries(view))
    situation = ("REG", 1, 1, 2, 10, 40, "CAR")
    assert defender_rows(view, "g:9") == [
        (2019, "g:9", "D1", "LA", *situation, True, 1.0),
        (2019, "g:9", "D2", "LA", *situation, False, 0.0),
        (2019, "g:9", "D3", "LA", *situation, True, 0.0),
        (2019, "g:9", "D4", "LA", *situation, False, 0.0),
    ]


def test_success_and_team_rules() -> None:
    def team(**kw: Any) -> dict[str, float]:
        view = _view(recorded(game(), _busy_play(**kw)))
        return {stat: v for (kind, _, stat), v in entries(view).items() if kind == "team"}

    assert "offense.successes" not in team(down=3, yards_gained=9)  # 3rd down: all of the distance
    assert "offense.successes" in team(down=1, yards_gained=4, play_type="rush")
    assert team(down=1, yards_gained=4, play_type="rush")["offense.runs"] == 1.0
    assert team(down=None, yards_gained=0, touchdown=True) == {
        "offense.plays": 1.0, "offense.touchdowns": 1.0, "offense.successes": 1.0, "offense.passes": 1.0,
    }  # fmt: skip
    assert team(play_type="punt") == {}
    assert team(offense=None) == {}


def test_a_delete_contributes_nothing_and_a_correction_the_difference() -> None:
    gone = _view(deleted(game(), "9", revision=2))
    assert (entries(gone), contribution(gone), defender_rows(gone, "g:9")) == ({}, {}, [])
    before = contribution(_view(recorded(game(), _busy_play())))
    after = contribution(_view(recorded(game(), _busy_play(yards_gained=13))))
    assert delta(after, before) == {("team", "CAR", 2019, "REG", 1, "offense.yards"): 1.0}
