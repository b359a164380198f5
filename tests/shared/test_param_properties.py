"""Property test over every query-parameter table of the read API: whatever a client sends, the
answer is parsed values or one 400 naming each bad field, never another exception (a 500)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import epa, queries
from services.query import games, players, plays
from shared import params as p
from shared.errors import ApiError

TABLES: dict[str, Mapping[str, p.Parser]] = {
    "plays": plays.PLAY_PARAMS,
    "games": games.GAME_PARAMS,
    "players": players.PLAYER_PARAMS,
    "stats": queries.STATS_PARAMS,
    "leaders": queries.LEADER_PARAMS,
    "pressure": queries.PRESSURE_PARAMS,
    "epa": epa.EPA_PARAMS,
    "tendencies": epa.TENDENCY_PARAMS,
}
# What clients really send, and what breaks parsers: digits and signs, commas, huge integers, NUL,
# lone surrogates, accents, percent signs and long strings.
_pieces = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"-?[0-9]{1,30}", fullmatch=True),
    st.sampled_from(["", ",", " , ", "\x00", "\ud800", "Núñez", "%", "2019,2018", "JAC,jax", "REG", "true"]),
)
_values = st.lists(_pieces, min_size=1, max_size=3).map(",".join)


@pytest.mark.parametrize("table", sorted(TABLES))
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_query_string_is_values_or_a_400_naming_each_bad_field(table: str, data: st.DataObject) -> None:
    spec = TABLES[table]
    names = st.one_of(st.sampled_from(sorted(spec)), st.text(min_size=1, max_size=12))
    query = data.draw(st.dictionaries(names, _values, max_size=5))
    try:
        values = p.parse_params(query, spec)
    except ApiError as err:
        assert err.status == 400
        fields = {d["field"] for d in err.details or []}
        assert fields and fields <= set(query), (query, err.details)
        return
    assert set(values) == set(query)


def test_cursors_of_every_list_refuse_whatever_they_did_not_make() -> None:
    @settings(max_examples=300, deadline=None, database=None)
    @given(token=st.one_of(st.text(max_size=80), st.binary(max_size=60).map(lambda b: b.hex())))
    def check(token: str) -> None:
        for cursor in (plays.CURSOR, games.CURSOR, players.CURSOR):
            try:
                cursor.decode(token)
            except ApiError as err:
                assert err.status == 400

    check()
