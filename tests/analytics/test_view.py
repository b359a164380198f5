"""The analytics views of the event contract: the same fields, types and tags; records decode or raise."""

from __future__ import annotations

from typing import Any, get_args, get_origin

import msgspec
import pytest

from services.analytics.view import (
    CorrectedView,
    CreditView,
    DeletedView,
    GameView,
    ParticipantView,
    PlayView,
    RecordedView,
    views_of,
)
from shared.events import (
    Game,
    Participant,
    Play,
    PlayCorrected,
    PlayDeleted,
    PlayEventBatch,
    PlayRecorded,
    StatCredit,
    encoder,
    events_of,
    latest_by_play,
    latest_revisions,
    play_key,
)
from tests.factories import corrected, deleted, event_dict, game, play, recorded

CONTRACT: dict[type, type] = {
    GameView: Game, ParticipantView: Participant, CreditView: StatCredit, PlayView: Play,
    RecordedView: PlayRecorded, CorrectedView: PlayCorrected, DeletedView: PlayDeleted,
}  # fmt: skip


def _as_contract(tp: Any) -> Any:
    """The type with every view struct replaced by its contract struct (unions and lists included)."""
    if tp in CONTRACT:
        return CONTRACT[tp]
    args = get_args(tp)
    if not args or get_origin(tp) is None:
        return tp
    return (get_origin(tp), tuple(_as_contract(a) for a in args), getattr(tp, "__metadata__", None))


@pytest.mark.parametrize("view", list(CONTRACT))
def test_every_view_field_is_the_contract_field(view: type) -> None:
    contract = CONTRACT[view]
    theirs = {f.name: f for f in msgspec.structs.fields(contract)}  # type: ignore[arg-type]
    assert view.__struct_config__.tag == contract.__struct_config__.tag  # type: ignore[attr-defined]
    assert view.__struct_config__.tag_field == contract.__struct_config__.tag_field  # type: ignore[attr-defined]
    for field in msgspec.structs.fields(view):  # type: ignore[arg-type]
        other = theirs[field.name]
        assert _as_contract(field.type) == _as_contract(other.type), field.name
        assert (field.default, field.default_factory) == (other.default, other.default_factory), field.name


def _records(events: list[Any]) -> list[bytes]:
    """The first event alone, the rest as one batch: consumers read both."""
    return [
        encoder.encode(events[0]),
        encoder.encode(PlayEventBatch(game_id="2019090800", events=events[1:])),
    ]


def test_views_read_what_the_full_decoder_reads() -> None:
    g = game()
    events = [recorded(g, play("1", 1)), recorded(g, play("2", 2, stat_id=110)),
              corrected(g, play("1", 1, stat_id=84, yardline_100=None), revision=3),
              recorded(g, play("1", 1)), deleted(g, "2", revision=2)]  # fmt: skip
    records = _records(events)
    views = views_of(records)
    assert [type(v) for v in views] == [RecordedView, RecordedView, CorrectedView, RecordedView, DeletedView]
    full = events_of(records)
    assert [play_key(e) for e in latest_revisions(full)] == list(latest_by_play(views))
    assert [e.revision for e in latest_revisions(full)] == [
        v.revision for v in latest_by_play(views).values()
    ]
    fix = latest_by_play(views)["2019090800:1"]
    assert isinstance(fix, CorrectedView)
    assert (fix.play.stats[0].stat_id, fix.play.yardline_100, fix.game.season_type) == (84, None, "REG")
    assert fix.play.participants[0] == ParticipantView(player_id="00-0030000", team="LA", side="defense",
                                                        name="A.Rusher")  # fmt: skip


def test_unknown_and_unused_fields_are_skipped() -> None:
    body = event_dict()
    body["weather"] = {"temp_f": 71}
    body["play"]["formation"] = {"offense": "SHOTGUN", "nested": [1, {"a": None}]}
    (view,) = views_of([msgspec.json.encode(body)])
    assert isinstance(view, RecordedView)
    assert view.play.yards_gained == -8


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update(type="play_happened"),
        lambda e: e["game"].update(season_type="XMAS"),
        lambda e: e["game"].update(season=1800),
        lambda e: e["game"].pop("week"),
        lambda e: e["play"].update(quarter=9),
        lambda e: e["play"].pop("play_id"),
        lambda e: e["play"]["stats"][0].update(stat_id="sack"),
        lambda e: e["play"]["participants"][0].update(team=""),
        lambda e: e.update(type="play_corrected", revision=1),
    ],
)
def test_a_record_that_does_not_decode_raises(change: Any) -> None:
    body = event_dict()
    change(body)
    with pytest.raises(msgspec.ValidationError):
        views_of([msgspec.json.encode(body)])
    with pytest.raises(msgspec.ValidationError):
        views_of([msgspec.json.encode({"type": "play_event_batch", "game_id": "g", "events": [body]})])


def test_a_record_that_is_not_json_raises() -> None:
    with pytest.raises(msgspec.DecodeError):
        views_of([b'{"type": "play_recorded", "game": '])
