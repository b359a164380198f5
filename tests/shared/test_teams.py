"""One code per franchise and season: the franchise table, event rewriting and team filters."""

from __future__ import annotations

import msgspec
import pytest

from shared import params as p
from shared.events import Participant, PlayDeleted, PlayRecorded
from shared.teams import FRANCHISES, canonical, canonical_event, expand, same_franchise
from tests.factories import KICKOFF, game, play, recorded


def test_every_code_belongs_to_one_franchise_and_eras_cover_every_season() -> None:
    seen: dict[str, str] = {}
    for f in FRANCHISES:
        for code in f.codes:
            assert seen.setdefault(code, f.id) == f.id, code
        for season in (1990, 2015, 2016, 2017, 2019, 2020, 2030):
            assert f.era(season).covers(season)
    assert len(FRANCHISES) == 32


@pytest.mark.parametrize(
    ("code", "season", "expected"),
    [("JAC", 2012, "JAX"), ("JAC", 2016, "JAX"), ("JAX", 2012, "JAX"), ("STL", 2015, "STL"), ("STL", 2016, "LA"),
     ("LA", 2015, "STL"), ("LAR", 2019, "LA"), ("SD", 2017, "LAC"), ("LAC", 2016, "SD"), ("OAK", 2020, "LV"),
     ("WSH", 2019, "WAS"), ("CAR", 2019, "CAR"), ("ZZZ", 2019, "ZZZ")],
)  # fmt: skip
def test_a_code_becomes_its_franchises_code_of_the_season(code: str, season: int, expected: str) -> None:
    assert canonical(code, season) == expected


def test_an_event_is_rewritten_only_where_a_code_changes() -> None:
    g = msgspec.structs.replace(game("2016091103", season=2016), home="JAX", away="GB")
    mixed = play(offense="JAC", defense="GB",
                 participants=[Participant(player_id="00-1", team="JAC", side="offense"),
                               Participant(player_id="00-2", team="GB", side="defense")])  # fmt: skip
    event = recorded(g, mixed)
    fixed = canonical_event(event)
    assert isinstance(fixed, PlayRecorded)
    assert fixed.play.offense == "JAX" and [x.team for x in fixed.play.participants] == ["JAX", "GB"]
    assert fixed.play.participants[1] is event.play.participants[1]
    assert fixed.event_id == event.event_id and fixed.play.description == event.play.description
    plain = recorded(game(), play())
    assert canonical_event(plain) is plain  # the usual event: the same object, nothing copied
    gone = PlayDeleted(event_id="e", occurred_at=KICKOFF, game=msgspec.structs.replace(g, home="JAC"),
                       play_id="51", revision=2)  # fmt: skip
    assert canonical_event(gone).game.home == "JAX"


def test_team_filters_take_any_code_of_the_franchise() -> None:
    assert expand(["stl".upper()]) == ["STL", "LA", "LAR"]
    assert p.teams()("jac,car") == ["JAX", "JAC", "CAR"]
    assert p.teams()("XYZ") == ["XYZ"]
    assert same_franchise("JAC", "JAX") and same_franchise("SD", "LAC") and not same_franchise("LA", "LAC")
    assert not same_franchise(None, None)
