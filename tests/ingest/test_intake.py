"""Request bodies to validated events: single, array, NDJSON, and every way they go wrong."""

from __future__ import annotations

import msgspec
import pytest

from services.ingest.intake import parse
from shared.errors import ApiError
from tests.factories import event_dict


def _json(value: object) -> bytes:
    return msgspec.json.encode(value)


def test_single_array_and_ndjson_bodies() -> None:
    assert len(parse(_json(event_dict()), "application/json").events) == 1
    assert len(parse(_json([event_dict(play_id=str(i)) for i in range(3)]), "application/json").events) == 3
    ndjson = b"\n".join(_json(event_dict(play_id=str(i))) for i in range(4)) + b"\n\n"
    assert len(parse(ndjson, "application/x-ndjson").events) == 4


def test_bad_items_are_rejected_by_index_and_field_while_good_ones_pass() -> None:
    bad_down = event_dict(play_id="2", down="third")
    same_teams = event_dict(play_id="3", offense="LA")
    batch = parse(
        _json([event_dict(play_id="1"), bad_down, same_teams, {"type": "play_recorded"}]), "application/json"
    )
    assert [i for i, _ in batch.events] == [0]
    rejected = {r["index"]: r["errors"] for r in batch.rejected}
    assert rejected[1] == [{"field": "play.down", "message": "Expected `int | null`, got `str`"}]
    assert rejected[2][0]["field"] == "play.defense"
    assert "missing required field" in rejected[3][0]["message"]


def test_a_broken_ndjson_line_is_rejected_alone() -> None:
    body = _json(event_dict(play_id="1")) + b"\n{not json\n" + _json(event_dict(play_id="2"))
    batch = parse(body, "application/x-ndjson")
    assert [i for i, _ in batch.events] == [0, 2]
    assert batch.rejected[0]["index"] == 1
    assert "malformed" in batch.rejected[0]["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "application/json", 400, "empty_body"),
        (b"   \n", "application/x-ndjson", 400, "empty_body"),
        (b'{"type": ', "application/json", 400, "malformed_json"),
        (b"[1, 2", "application/json", 400, "malformed_json"),
        (b"<xml/>", "application/xml", 415, "unsupported_media_type"),
        (b"{}", "", 415, "unsupported_media_type"),
    ],
)
def test_unusable_bodies_get_a_clear_error(body: bytes, content_type: str, status: int, code: str) -> None:
    with pytest.raises(ApiError) as err:
        parse(body, content_type)
    assert (err.value.status, err.value.code) == (status, code)


def test_team_codes_and_clocks_are_checked_at_the_edge() -> None:
    lower = event_dict(play_id="1", offense="car")
    bad_clock = event_dict(play_id="2", clock="15:75")
    credit_team = event_dict(play_id="3")
    credit_team["play"]["stats"][0]["team"] = "L4"
    batch = parse(_json([lower, bad_clock, credit_team]), "application/json")
    assert not batch.events
    fields = {r["index"]: [e["field"] for e in r["errors"]] for r in batch.rejected}
    assert fields == {0: ["play.offense"], 1: ["play.clock"], 2: ["play.stats[0].team"]}


def test_an_unknown_stat_id_is_kept_not_refused() -> None:
    body = event_dict()
    body["play"]["stats"].append({"stat_id": 999, "team": "LA", "player_id": "00-0030000"})
    [(_, event)] = parse(_json(body), "application/json").events
    assert [s.stat_id for s in event.play.stats] == [83, 999]
