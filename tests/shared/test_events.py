"""The event contract: what is valid, what is not, and how it may evolve."""

from __future__ import annotations

import msgspec
import pytest

from shared.events import PlayCorrected, PlayDeleted, PlayRecorded, decoder, encoder, json_schema, play_key
from tests.factories import event_dict, game, recorded
from tests.factories import play as make_play


def test_a_valid_event_round_trips() -> None:
    raw = msgspec.json.encode(event_dict())
    event = decoder.decode(raw)
    assert isinstance(event, PlayRecorded)
    assert event.play.stats[0].stat_id == 83
    assert decoder.decode(encoder.encode(event)) == event
    assert play_key(event) == "2019090800:51"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["play"].update(down="3"), "$.play.down"),
        (lambda e: e["play"].update(quarter=9), "$.play.quarter"),
        (lambda e: e["play"].update(clock="15"), "$.play.clock"),
        (lambda e: e["game"].update(season_type="XMAS"), "$.game.season_type"),
        (lambda e: e["game"].pop("week"), "$.game"),
        (lambda e: e.pop("event_id"), "event_id"),
        (lambda e: e["play"]["stats"][0].update(stat_id="sack"), "$.play.stats[0].stat_id"),
    ],
)
def test_invalid_events_name_the_field(change, field) -> None:  # type: ignore[no-untyped-def]
    body = event_dict()
    change(body)
    with pytest.raises(msgspec.ValidationError) as err:
        decoder.decode(msgspec.json.encode(body))
    assert field in str(err.value)


def test_an_unknown_type_is_refused() -> None:
    body = event_dict()
    body["type"] = "play_happened"
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'play_happened'"):
        decoder.decode(msgspec.json.encode(body))


def test_unknown_fields_are_ignored_so_older_consumers_read_newer_events() -> None:
    body = event_dict()
    body["weather"] = {"temp_f": 71}
    body["play"]["expected_points_added"] = 1.2
    event = decoder.decode(msgspec.json.encode(body))
    assert isinstance(event, PlayRecorded)
    assert not hasattr(event.play, "expected_points_added")


def test_evolution_fields_added_later_have_defaults() -> None:
    # An event from the first producers: no formation, personnel, flags, participants or stats.
    body = event_dict()
    for name in ("participants", "stats", "yards_gained", "play_type", "description"):
        body["play"].pop(name)
    event = decoder.decode(msgspec.json.encode(body))
    assert isinstance(event, PlayRecorded)
    assert (event.play.participants, event.play.stats, event.play.play_type) == ([], [], "unknown")
    assert event.revision == 1
    assert event.schema_version == 1


def test_a_correction_must_be_a_later_revision() -> None:
    body = event_dict()
    body.update(type="play_corrected", revision=1)
    with pytest.raises(msgspec.ValidationError, match="revision"):
        decoder.decode(msgspec.json.encode(body))
    body["revision"] = 2
    assert isinstance(decoder.decode(msgspec.json.encode(body)), PlayCorrected)


def test_a_delete_names_the_play() -> None:
    g = game()
    event = decoder.decode(encoder.encode(recorded(g, make_play())))
    delete = {"type": "play_deleted", "event_id": "d1", "occurred_at": "2019-09-08T18:00:00Z",
              "game": msgspec.to_builtins(g), "play_id": "51", "revision": 2}  # fmt: skip
    decoded = decoder.decode(msgspec.json.encode(delete))
    assert isinstance(decoded, PlayDeleted)
    assert play_key(decoded) == play_key(event)


def test_the_json_schema_is_exported_for_feed_providers() -> None:
    schema = json_schema()
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == {"play_recorded", "play_corrected", "play_deleted"}
    play = schema["$defs"]["Play"]
    assert {"play_id", "sequence", "quarter"} <= set(play["required"])
