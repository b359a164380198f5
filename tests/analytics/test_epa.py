"""EPA aggregates and team tendencies on real PostgreSQL, from two real games valued by the suite's
model: every play's stored values are the model's, and for random filters (hypothesis) the answers
equal a recomputation in Python from the events, before and after corrections and deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import epa
from services.analytics.store import VALUER, AggregateStore
from shared import epwp
from shared.config import Settings
from shared.db import postgres_dependency
from shared.errors import ApiError
from shared.events import PlayEvent, PlayRecorded
from shared.stats import CREDITS
from tests.factories import corrected, deleted, real_games

GAMES = ("2018090600", "2018090900")  # ATL at PHI, CIN at IND: 2018, a season the suite's model held out
SCRIMMAGE = {"run", "rush", "pass", "sack"}
CARRIER_GROUPS = {"passing", "rushing", "receiving"}
_VALUES = (
    "SELECT play_id, ep_before, ep_after, epa, wp_before, wp_after FROM analytics_plays WHERE game_id = $1"
)


@pytest.fixture(scope="module")
def games() -> dict[str, list[PlayRecorded]]:
    return real_games(*GAMES)


@pytest.fixture
def models(epwp_model: Path) -> epwp.ModelFile:
    models = epwp.ModelFile(epwp_model)
    assert models.refresh()
    return models


@dataclass
class Harness:
    store: AggregateStore
    pool: Any
    db: Any


@pytest.fixture
async def harness(
    database_url: str, make_settings: Callable[..., Settings], started: Any, models: epwp.ModelFile
) -> Harness:
    dep = postgres_dependency(
        make_settings("analytics", DATABASE_URL=database_url), migrations="services.analytics"
    )
    await started(dep)
    return Harness(store=AggregateStore(dep, models=models), pool=dep.get().primary, db=dep)


# --- the recomputation ----------------------------------------------------------------------------


@dataclass
class Row:
    """One play as the recomputation sees it."""

    offense: str | None
    defense: str | None
    quarter: int
    down: int | None
    yards_to_go: int | None
    yardline_100: int | None
    play_type: str
    yards: int
    epa: float | None
    carriers: list[str]
    defenders: list[tuple[str, str]]  # (player, team)


def _rows(models: epwp.ModelFile, games: dict[str, list[PlayRecorded]]) -> list[Row]:
    assert models.model is not None
    out: list[Row] = []
    for events in games.values():
        plays = sorted(events, key=lambda e: (e.play.sequence, e.play.play_id))
        values = models.model.game_values(plays[0].game.home, [e.play for e in plays])
        for e, v in zip(plays, values, strict=True):
            p = e.play
            carriers: list[str] = []
            for c in p.stats:
                groups = {group for group, _, _ in CREDITS.get(c.stat_id, ())}
                if (
                    c.player_id
                    and c.team == p.offense
                    and groups & CARRIER_GROUPS
                    and c.player_id not in carriers
                ):
                    carriers.append(c.player_id)
            defenders = {pp.player_id: pp.team for pp in p.participants if pp.side == "defense"}
            for c in p.stats:
                if c.player_id and c.stat_id >= 25 and c.team == p.defense:
                    defenders.setdefault(c.player_id, c.team)
            out.append(Row(p.offense, p.defense, p.quarter, p.down, p.yards_to_go, p.yardline_100, p.play_type,
                           p.yards_gained, None if v is None else v.epa, carriers,
                           list(defenders.items())))  # fmt: skip
    return out


def _selected(rows: list[Row], f: dict[str, Any]) -> list[Row]:
    def keep(r: Row) -> bool:
        if not (r.down and 1 <= r.down <= 4 and r.play_type in SCRIMMAGE):
            return False
        checks = (
            ("down", lambda v: r.down in v), ("quarter", lambda v: r.quarter in v),
            ("ytg_min", lambda v: r.yards_to_go is not None and r.yards_to_go >= v),
            ("ytg_max", lambda v: r.yards_to_go is not None and r.yards_to_go <= v),
            ("yardline_min", lambda v: r.yardline_100 is not None and r.yardline_100 >= v),
            ("yardline_max", lambda v: r.yardline_100 is not None and r.yardline_100 <= v),
        )  # fmt: skip
        return all(check(f[name]) for name, check in checks if name in f)

    return [r for r in rows if keep(r)]


def _figures(epas: list[float | None]) -> dict[str, Any]:
    valued = [x for x in epas if x is not None]
    return {
        "plays": len(epas), "valued_plays": len(valued),
        "epa_total": sum(valued) if valued else None,
        "epa_per_play": sum(valued) / len(valued) if valued else None,
        "success_rate": sum(x > 0 for x in valued) / len(valued) if valued else None,
    }  # fmt: skip


def expected_epa(rows: list[Row], f: dict[str, Any], group: str, side: str, min_plays: int) -> dict[str, Any]:
    teams = set(f.get("team", ()))
    buckets: dict[str, list[float | None]] = {}
    for r in _selected(rows, f):
        if group == "team":
            code = r.offense if side == "offense" else r.defense
            subjects = [code] if code and (not teams or code in teams) else []
        elif side == "offense":
            subjects = r.carriers if not teams or r.offense in teams else []
        else:
            subjects = [pid for pid, team in r.defenders if not teams or team in teams]
        for s in subjects:
            buckets.setdefault(s, []).append(r.epa)
    return {s: _figures(e) for s, e in buckets.items() if len(e) >= min_plays}


def expected_tendencies(
    rows: list[Row], team: str, f: dict[str, Any]
) -> dict[tuple[int, str] | None, dict[str, Any]]:
    out: dict[tuple[int, str] | None, list[Row]] = {}
    for r in _selected(rows, f):
        if r.offense != team or not r.yards_to_go:
            continue
        bucket = "short" if r.yards_to_go <= 3 else "medium" if r.yards_to_go <= 7 else "long"
        out.setdefault((r.down, bucket), []).append(r)  # type: ignore[arg-type]
        out.setdefault(None, []).append(r)
    return {
        k: {**_figures([r.epa for r in rs]), "runs": sum(r.play_type in ("run", "rush") for r in rs),
            "passes": sum(r.play_type in ("pass", "sack") for r in rs),
            "yards_per_play": sum(r.yards for r in rs) / len(rs)}
        for k, rs in out.items()
    }  # fmt: skip


def _close(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        got = answer[name]
        if value is None or isinstance(value, int):
            assert got == value, (name, got, value)
        else:
            assert got == pytest.approx(value, abs=1e-4), (name, got, value)


def check_epa(answer: dict[str, Any], expected: dict[str, Any], group: str, side: str) -> None:
    key = "team" if group == "team" else "player_id"
    items = answer["items"]
    assert {i[key] for i in items} == set(expected)
    for item in items:
        _close(item, expected[item[key]])
    per_play = [i["epa_per_play"] for i in items if i["epa_per_play"] is not None]
    assert per_play == sorted(per_play, reverse=side == "offense")  # best first


def check_tendencies(answer: dict[str, Any], expected: dict[Any, dict[str, Any]]) -> None:
    situations = {(s["down"], s["distance"]): s for s in answer["situations"]}
    assert set(situations) == {k for k in expected if k is not None}
    for k, figures in expected.items():
        _close(answer["overall"] if k is None else situations[k], figures)


# --- the tests ------------------------------------------------------------------------------------


async def test_every_play_is_stored_with_the_models_values(
    harness: Harness, models: epwp.ModelFile, games: dict[str, list[PlayRecorded]]
) -> None:
    await harness.store.apply([e for events in games.values() for e in events])
    assert models.model is not None
    for game_id, events in games.items():
        stored = {r["play_id"]: tuple(r)[1:] for r in await harness.pool.fetch(_VALUES, game_id)}
        computed = models.model.game_values(events[0].game.home, [e.play for e in events])
        expected = {
            f"{game_id}:{e.play.play_id}": epwp_columns(v) for e, v in zip(events, computed, strict=True)
        }
        assert stored == expected
        assert sum(v[2] is not None for v in stored.values()) > 100


def epwp_columns(v: epwp.Values | None) -> tuple[float | None, ...]:
    return (None,) * 5 if v is None else (v.ep_before, v.ep_after, v.epa, v.wp_before, v.wp_after)


_FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "down": st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True),
        "quarter": st.lists(st.integers(1, 5), min_size=1, max_size=3, unique=True),
        "ytg_min": st.integers(1, 12),
        "ytg_max": st.integers(5, 30),
        "yardline_min": st.integers(1, 50),
        "yardline_max": st.integers(40, 99),
        "team": st.lists(st.sampled_from(["ATL", "PHI", "CIN", "IND"]), min_size=1, max_size=2, unique=True),
    },
)
_SHAPE = st.tuples(
    st.sampled_from(["team", "player"]), st.sampled_from(["offense", "defense"]), st.integers(1, 30)
)


def _query(f: dict[str, Any]) -> dict[str, str]:
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in f.items()}


async def _random_filters_equal_the_recomputation(harness: Harness, rows: list[Row], examples: int) -> None:
    """Hypothesis draws the filters in a worker thread; each answer is computed on this loop."""
    loop = asyncio.get_running_loop()

    def ask(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(f=_FILTERS, shape=_SHAPE, team=st.sampled_from(["ATL", "PHI", "CIN", "IND"]))
    def check(f: dict[str, Any], shape: tuple[str, str, int], team: str) -> None:
        if f.get("ytg_min", 0) > f.get("ytg_max", 99) or f.get("yardline_min", 0) > f.get("yardline_max", 99):
            return  # an impossible range is a 400 (tested below)
        group, side, min_plays = shape
        q = {**_query(f), "group": group, "side": side, "min_plays": str(min_plays), "limit": "500"}
        check_epa(ask(epa.epa(harness.pool, q)), expected_epa(rows, f, group, side, min_plays), group, side)
        t = {k: v for k, v in f.items() if k != "team"}
        check_tendencies(
            ask(epa.tendencies(harness.pool, team, _query(t))), expected_tendencies(rows, team, t)
        )

    await asyncio.to_thread(check)


async def test_answers_equal_the_recomputation_before_and_after_corrections_and_deletes(
    harness: Harness, models: epwp.ModelFile, games: dict[str, list[PlayRecorded]]
) -> None:
    await harness.store.apply([e for events in games.values() for e in events])
    await _random_filters_equal_the_recomputation(harness, _rows(models, games), 40)
    # Corrections (a different situation, a different gain) and deletes, in each game.
    fixed = {g: list(events) for g, events in games.items()}
    changes: list[PlayEvent] = []
    for events in fixed.values():
        valued = [i for i, e in enumerate(events) if e.play.down and e.play.play_type in SCRIMMAGE]
        for n, i in enumerate(valued[5:60:9]):
            e = events[i]
            moved = msgspec.structs.replace(
                e.play, down=3, yards_to_go=9 + n, yards_gained=e.play.yards_gained + 4
            )
            changes.append(corrected(e.game, moved, revision=2))
            events[i] = msgspec.structs.replace(e, play=moved)
        for i in sorted(valued[70:100:10], reverse=True):
            changes.append(deleted(events[i].game, events[i].play.play_id, revision=3))
            del events[i]
    assert await harness.store.apply(changes) == len(changes)
    await _random_filters_equal_the_recomputation(harness, _rows(models, fixed), 40)


async def test_history_is_valued_by_the_background_pass(
    harness: Harness, models: epwp.ModelFile, games: dict[str, list[PlayRecorded]]
) -> None:
    from shared.events import encoder

    events = [e for evs in games.values() for e in evs]
    await harness.store.apply_records([encoder.encode(e) for e in events], defer_values=set(GAMES))
    q = {"group": "team", "side": "offense"}
    before = await epa.epa(harness.pool, q)
    assert all(i["valued_plays"] == 0 and i["epa_per_play"] is None for i in before["items"])
    assert await VALUER.backfill(harness.db, models, None, _no_bump) == len(GAMES)
    check_epa(
        await epa.epa(harness.pool, q),
        expected_epa(_rows(models, games), {}, "team", "offense", 1),
        "team",
        "offense",
    )


async def _no_bump(conn: Any, ids: list[str]) -> None:
    return None


async def test_bad_requests_name_the_field(harness: Harness, games: dict[str, list[PlayRecorded]]) -> None:
    await harness.store.apply(games[GAMES[0]])
    for query, field in (
        ({}, "group"), ({"group": "team"}, "side"), ({"group": "teams", "side": "offense"}, "group"),
        ({"group": "team", "side": "offense,defense"}, "side"),
        ({"group": "team", "side": "offense", "ytg_min": "9", "ytg_max": "3"}, "ytg_min"),
        ({"group": "team", "side": "offense", "season_type": "XYZ"}, "season_type"),
    ):  # fmt: skip
        with pytest.raises(ApiError) as err:
            await epa.epa(harness.pool, query)
        assert err.value.status == 400
        assert field in str(err.value.details), (query, err.value.details)
    for team in ("ZZZ", "TOOLONG", "A1"):
        with pytest.raises(ApiError) as err:
            await epa.tendencies(harness.pool, team, {})
        assert err.value.status == 404
    # A franchise's other code answers for it; a known franchise without plays answers zeros.
    assert (await epa.tendencies(harness.pool, "atl", {}))["overall"]["plays"] > 0
    assert (await epa.tendencies(harness.pool, "NE", {}))["overall"]["plays"] == 0


async def test_the_regular_season_is_the_default_and_all_counts_every_game(
    harness: Harness, games: dict[str, list[PlayRecorded]]
) -> None:
    events = games[GAMES[0]]
    preseason = [msgspec.structs.replace(e, game=msgspec.structs.replace(e.game, season_type="PRE", game_id="PRE1"),
                                         event_id=e.event_id + "-pre") for e in events]  # fmt: skip
    await harness.store.apply(events + preseason)
    q = {"group": "team", "side": "offense", "team": "PHI"}
    regular, everything = (
        await epa.epa(harness.pool, q),
        await epa.epa(harness.pool, {**q, "season_type": "ALL"}),
    )
    assert regular["season_type"] == ["REG"]
    assert everything["items"][0]["plays"] == 2 * regular["items"][0]["plays"] > 0
