"""The EP/WP model (shared/epwp.py) fitted on real seasons: the facts any sound model shows, its
calibration on a held-out season, and how a game's plays get their values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from shared import epwp
from shared.epwp import Snap


@pytest.fixture(scope="module")
def model(epwp_artifact: dict[str, Any]) -> epwp.Model:
    return epwp.Model(epwp_artifact)


def test_the_model_shows_the_sanity_facts(model: epwp.Model) -> None:
    facts = epwp.sanity(model)
    assert all(ok for _, ok in facts.values()), facts


def test_it_is_calibrated_on_a_season_it_did_not_see(epwp_artifact: dict[str, Any]) -> None:
    assert epwp_artifact["holdout_seasons"] == [2018]
    assert 2018 not in epwp_artifact["train_seasons"]
    cal = epwp_artifact["calibration"]
    assert [r["decile"] for r in cal["ep"]] == list(range(1, 11))
    # Each decile's mean prediction within half a point / five points of win rate of what happened.
    assert max(abs(r["predicted"] - r["observed"]) for r in cal["ep"]) < 0.5, cal["ep"]
    assert max(abs(r["predicted"] - r["observed"]) for r in cal["wp"]) < 0.05, cal["wp"]
    assert cal["wp_brier"] < 0.2
    # Predictions rise with the decile: the model ranks situations, not only averages them.
    observed = [r["observed"] for r in cal["ep"]]
    assert observed == sorted(observed)


def test_more_yards_to_go_and_a_longer_field_are_worth_less(model: epwp.Model) -> None:
    def ep(**kw: Any) -> float:
        return epwp.situation_values(model, Snap(**kw)).ep_before

    assert ep(yardline_100=20) > ep(yardline_100=50) > ep(yardline_100=80)
    assert ep(down=1, yards_to_go=10) > ep(down=3, yards_to_go=10) > ep(down=4, yards_to_go=10)
    assert ep(down=3, yards_to_go=1) > ep(down=3, yards_to_go=15)


def _game(*plays: Snap) -> list[Snap]:
    return [dataclasses.replace(p, sequence=i) for i, p in enumerate(plays, start=1)]


def test_a_touchdown_is_worth_seven_and_the_next_snap_values_the_others(model: epwp.Model) -> None:
    plays = _game(
        Snap(down=1, yards_to_go=10, yardline_100=30, home_score=0, away_score=0),
        Snap(down=2, yards_to_go=4, yardline_100=24, home_score=0, away_score=0),
        Snap(down=1, yards_to_go=10, yardline_100=10, home_score=6, away_score=0),  # touchdown
        Snap(down=None, play_type="extra_point", home_score=7, away_score=0),
        Snap(down=None, play_type="kickoff", offense="HOME", defense="AWAY", home_score=7, away_score=0),
        Snap(
            down=1,
            yards_to_go=10,
            yardline_100=75,
            offense="AWAY",
            defense="HOME",
            clock="13:00",
            home_score=7,
            away_score=0,
        ),
    )
    v = model.game_values("HOME", plays)
    first, second, td, xp, kick, after = v
    assert xp is None and kick is None  # tries and kickoffs have no scrimmage situation
    assert first is not None and second is not None and td is not None and after is not None
    assert first.ep_after == second.ep_before  # the same team's next snap
    assert first.epa == round(first.ep_after - first.ep_before, 4)
    assert td.ep_after == 7.0 and td.epa is not None and td.epa > 0
    assert first.wp_after == second.wp_before
    assert td.wp_after == round(1 - after.wp_before, 4)  # the other side has the ball next
    assert after.ep_after is None and after.wp_after is None  # the game goes on: not known yet
    assert model.game_values("HOME", plays) == v  # pure: a recomputation gives the same values


def test_the_end_of_a_half_and_of_the_game_close_the_values(model: epwp.Model) -> None:
    plays = _game(
        Snap(
            quarter=2,
            clock="0:05",
            down=1,
            yards_to_go=10,
            yardline_100=60,
            home_score=0,
            away_score=0,
            game_status="halftime",
        ),
        Snap(quarter=4, clock="1:00", down=None, play_type="kickoff", home_score=10, away_score=7),
        Snap(
            quarter=4,
            clock="0:40",
            down=1,
            yards_to_go=10,
            yardline_100=60,
            offense="AWAY",
            defense="HOME",
            home_score=10,
            away_score=7,
        ),
        Snap(
            quarter=4,
            clock="0:02",
            down=2,
            yards_to_go=10,
            yardline_100=60,
            offense="AWAY",
            defense="HOME",
            home_score=10,
            away_score=7,
            game_status="final",
        ),
    )
    half, _, on, last = model.game_values("HOME", plays)
    assert half is not None and half.ep_after == 0.0  # nothing more to score in the half
    assert on is not None and last is not None and on.ep_after == last.ep_before
    assert last.ep_after == 0.0 and last.wp_after == 0.0  # the away side had the ball and lost


def test_plays_without_a_score_or_a_down_get_no_values(model: epwp.Model) -> None:
    plays = _game(Snap(home_score=None, away_score=None), Snap(down=None), Snap(yardline_100=None))
    plays = [plays[0], dataclasses.replace(plays[1], home_score=0, away_score=0), plays[2]]
    assert model.game_values("HOME", plays) == [None, None, None]


def test_the_model_file_is_read_again_when_it_changes_and_kept_when_broken(
    tmp_path: Path, epwp_artifact: dict[str, Any]
) -> None:
    path = tmp_path / "epwp.json"
    models = epwp.ModelFile(path)
    assert models.refresh() is False and models.model is None
    assert "snapline model fit" in models.detail()
    epwp.save(epwp_artifact, path)
    assert models.refresh() is True and models.model is not None
    assert models.detail() == f"loaded {epwp_artifact['version']}"
    assert models.refresh() is False  # unchanged
    path.write_text("{not json")
    assert models.refresh() is False
    assert models.model is not None and models.model.version == epwp_artifact["version"]
    assert "cannot be read" in models.detail()
    other = dict(epwp_artifact, version="epwp-other")
    path.write_text(json.dumps(other))
    assert models.refresh() is True and models.model.version == "epwp-other"
