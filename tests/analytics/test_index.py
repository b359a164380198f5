"""The in-process pressure index on real PostgreSQL: for random filters (hypothesis) its ranking
is the SQL's, row for row, before and after corrections, deletes, a new week and a rebuild-style
swap; it reloads only what moved; past its row bound it lets go and SQL answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import index as ix
from services.analytics import queries
from services.analytics.store import GENERATIONS, AggregateStore
from shared.answers import bump_all
from shared.config import Settings
from shared.db import postgres_dependency
from shared.events import Game, Participant, PlayEvent, PlayRecorded, StatCredit
from tests.factories import corrected, deleted, game, play, real_games, recorded

GAMES = ("2018090600", "2018090900", "2018091000")


@pytest.fixture(scope="module")
def events() -> list[PlayRecorded]:
    """Three real games, and copies of them in other seasons, weeks and season types (another game id)."""
    real = [e for events in real_games(*GAMES).values() for e in events]
    out = list(real)
    for n, (season, season_type, week) in enumerate(
        ((2017, "REG", 2), (2018, "PRE", 1), (2016, "POST", 18)), 1
    ):
        for e in real[n - 1 :: 3]:  # a third of the plays, so that the copies differ from the originals
            game = msgspec.structs.replace(
                e.game, game_id=f"{e.game.game_id}{n}", season=season, season_type=season_type, week=week
            )
            out.append(msgspec.structs.replace(e, game=game, event_id=f"{e.event_id}-{n}"))
    return out


@dataclass
class Harness:
    store: AggregateStore
    pool: Any


@pytest.fixture
async def harness(database_url: str, make_settings: Callable[..., Settings], started: Any) -> Harness:
    dep = postgres_dependency(
        make_settings("analytics", DATABASE_URL=database_url), migrations="services.analytics"
    )
    await started(dep)
    return Harness(store=AggregateStore(dep), pool=dep.get().primary)


_FILTERS = st.fixed_dictionaries(
    {  # always drawn (None: left out), so that most examples narrow by down and distance
        "down": st.sampled_from(["1", "2", "3", "4", "3,4", "1,2", None]),
        "ytg_max": st.sampled_from([None, 10, 3, 6]),
        # Few snaps and long lists: three games' rankings are mostly players with a snap or two, and
        # only the whole list shows a count that is off.
        "min_snaps": st.integers(1, 6), "limit": st.sampled_from([100, 100, 100, 3, 20]),
    },
    optional={
        "season": st.sampled_from(["2018", "2017,2018", "2016", "2016,2017"]),
        "season_type": st.sampled_from(["REG", "PRE", "POST", "ALL", "REG,POST"]),
        "week_min": st.integers(0, 3), "week_max": st.integers(1, 20),
        "quarter": st.sampled_from(["1", "2", "4", "1,3"]),
        "ytg_min": st.integers(0, 10),
        "yardline_min": st.integers(1, 50), "yardline_max": st.integers(20, 99),
        "team": st.sampled_from(["PHI", "atl", "CIN,IND", "NYJ", "DET", "NE"]),
        "position": st.sampled_from(["DE", "LB,OLB", "CB"]),
    },
)  # fmt: skip


async def _same_as_sql(pool: Any, index: ix.DefenderIndex, examples: int) -> None:
    """Hypothesis draws the filters in a worker thread; both answers are computed on this loop."""
    loop = asyncio.get_running_loop()

    def ask(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(f=_FILTERS)
    def check(f: dict[str, Any]) -> None:
        q = {k: str(v) for k, v in f.items() if v is not None}
        if (
            int(q.get("ytg_min", 0)) > int(q.get("ytg_max", 99))
            or int(q.get("yardline_min", 0)) > int(q.get("yardline_max", 99))
            or int(q.get("week_min", 0)) > int(q.get("week_max", 30))
        ):
            return  # a 400 either way
        by_sql = ask(queries.pressure_leaders(pool, q))
        by_index = ask(queries.pressure_leaders(pool, q, index))
        assert by_index == by_sql, q

    await asyncio.to_thread(check)


async def test_the_index_ranks_as_the_sql_does_and_follows_every_change(
    harness: Harness, events: list[PlayRecorded]
) -> None:
    await harness.store.apply(events)
    index = ix.DefenderIndex(GENERATIONS, max_rows=10_000_000)
    index.few_seasons = 0  # the all-seasons base answers whatever it can (three seasons here)
    q = {"min_snaps": "5", "limit": "100", "season_type": "ALL"}
    first = await queries.pressure_leaders(harness.pool, q, index)
    assert len(first["items"]) > 20 and first == await queries.pressure_leaders(harness.pool, q)
    loads = {why: ix.LOADS.labels(why)._value.get() for why in ("season", "week")}
    await _same_as_sql(harness.pool, index, 30)  # each season from its own columns
    await index.rebuild_base()
    assert index.base is not None and not index._dirty()
    await _same_as_sql(harness.pool, index, 40)  # from the base
    assert ix.LOADS.labels("season")._value.get() == loads["season"]  # nothing moved: nothing read again

    # Corrections (a sack taken away, a sack added) and deletes: one week moves, only it is read again.
    week_one = [e for e in events if e.game.game_id in GAMES]
    changes: list[PlayEvent] = []
    sacks = [e for e in week_one if any(c.stat_id in (83, 84) for c in e.play.stats)]
    for e in sacks[:3]:
        kept = [c for c in e.play.stats if c.stat_id not in (83, 84, 110)]
        changes.append(corrected(e.game, msgspec.structs.replace(e.play, stats=kept), revision=2))
    plain = [e for e in week_one if e.play.down and e.play.participants and e not in sacks]
    for e in [e for e in plain if any(pp.side == "defense" for pp in e.play.participants)][:3]:
        defender = next(pp for pp in e.play.participants if pp.side == "defense")
        credit = StatCredit(stat_id=83, team=defender.team, player_id=defender.player_id, yards=-7)
        changes.append(
            corrected(e.game, msgspec.structs.replace(e.play, stats=[*e.play.stats, credit]), revision=2)
        )
    for e in plain[10:40:5]:
        changes.append(deleted(e.game, e.play.play_id, revision=3))
    assert await harness.store.apply(changes) == len(changes)
    weeks_before = ix.LOADS.labels("week")._value.get()
    await _same_as_sql(harness.pool, index, 40)  # 2018 from its own columns, 2016 and 2017 from the base
    assert ix.LOADS.labels("week")._value.get() == weeks_before + 1  # REG week 1 alone
    assert index._dirty() == {2018}
    await index.rebuild_base()
    await _same_as_sql(harness.pool, index, 20)

    # A new week arrives (a copy of the games as week 5): the index finds it.
    later = [msgspec.structs.replace(e, game=msgspec.structs.replace(e.game, game_id=e.game.game_id + "5", week=5),
                                     event_id=e.event_id + "-w5") for e in week_one]  # fmt: skip
    await harness.store.apply(later)
    fifth = await queries.pressure_leaders(harness.pool, {**q, "week_min": "5", "week_max": "5"}, index)
    assert fifth["items"] and fifth == await queries.pressure_leaders(
        harness.pool, {**q, "week_min": "5", "week_max": "5"}
    )
    # A rebuild swapped the tables in (here: rows removed behind the store's back, then every
    # generation raised, as after_swap does): the index reads everything again.
    await harness.pool.execute("DELETE FROM defender_plays WHERE week = 5")
    async with harness.pool.acquire() as conn:
        await bump_all(conn, GENERATIONS)
    assert (await queries.pressure_leaders(harness.pool, {**q, "week_min": "5", "week_max": "5"}, index))[
        "items"
    ] == []
    await _same_as_sql(harness.pool, index, 20)


async def test_past_its_bound_the_index_lets_go_and_sql_answers(
    harness: Harness, events: list[PlayRecorded]
) -> None:
    await harness.store.apply(events)
    rows = await harness.pool.fetchval("SELECT count(*) FROM defender_plays")
    index = ix.DefenderIndex(GENERATIONS, max_rows=rows - 1)
    q = {"min_snaps": "5", "season_type": "ALL"}
    assert await queries.pressure_leaders(harness.pool, q, index) == await queries.pressure_leaders(
        harness.pool, q
    )
    assert not index.enabled and "ANALYTICS_INDEX_ROWS" in str(index.disabled)
    assert ix.DefenderIndex(GENERATIONS, max_rows=0).enabled is False


async def test_missing_situations_and_a_traded_player_rank_as_in_sql(harness: Harness) -> None:
    """What three real games may not hold: a snap without a yardline or distance, and a defender
    who played for two teams (the SQL's min(team))."""
    first = game("2019090800")
    traded = Game(game_id="2019091500", season=2019, season_type="REG", week=2, home="NYJ", away="NE")
    who = "00-0031111"
    events = [
        recorded(first, play("1", 1, defender=who, yardline_100=None, yards_to_go=None)),
        recorded(first, play("2", 2, defender=who, stat_id=79, yardline_100=30, yards_to_go=10)),
        recorded(first, play("3", 3, defender="00-0032222", stat_id=110, yardline_100=None, yards_to_go=5)),
        recorded(traded, play("1", 1, defender=who, stat_id=110, offense="NE", defense="NYJ",
                              participants=[Participant(player_id=who, team="NYJ", side="defense")],
                              stats=[StatCredit(stat_id=110, team="NYJ", player_id=who)])),
    ]  # fmt: skip
    await harness.store.apply(events)
    index = ix.DefenderIndex(GENERATIONS, max_rows=1000)
    for q in ({}, {"yardline_max": "50"}, {"yardline_min": "1"}, {"ytg_max": "10"}, {"ytg_min": "0"},
              {"down": "3", "ytg_max": "10"}, {"down": "3"}, {"team": "NYJ"}, {"team": "LA,NYJ"}):  # fmt: skip
        q = {**q, "min_snaps": "1"}
        by_index = await queries.pressure_leaders(harness.pool, q, index)
        assert by_index == await queries.pressure_leaders(harness.pool, q), q
    assert {i["player_id"]: i["team"] for i in by_index["items"]}[who] == "LA"
