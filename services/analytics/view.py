"""The part of the event contract analytics reads: narrower msgspec views of shared.events.

Decoding a Kafka record into the full PlayEvent structs builds every field (descriptions,
clocks, formation and personnel dicts, credit categories...) that the aggregates never look
at. These views declare only the fields analytics uses, with the contract's own types and
constraints; msgspec skips the other fields while parsing, without building them. The
contract stays shared.events: tests/analytics/test_view.py checks every view field against it.

A record that does not decode as a view raises msgspec.ValidationError/DecodeError, so the
consumer loop sends it to the dead-letter topic as before. The fields the view skips are not
validated here: ingest validated every event, whole, before publishing it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.events import (
    Clock,
    Count,
    GameStatus,
    Int32,
    LaterRevision,
    NonEmpty,
    Revision,
    SeasonType,
    Side,
    TeamCode,
    view_decoder,
)


class GameView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    game_id: NonEmpty
    season: Annotated[int, msgspec.Meta(ge=1920, le=2100)]
    season_type: SeasonType
    week: Annotated[int, msgspec.Meta(ge=0, le=30)]
    home: TeamCode
    away: TeamCode


class ParticipantView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    player_id: NonEmpty
    team: TeamCode
    side: Side = "unknown"
    name: str | None = None
    position: str | None = None


class CreditView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    stat_id: Annotated[int, msgspec.Meta(ge=1, le=9999)]
    team: TeamCode
    player_id: str | None = None
    yards: Int32 = 0


class PlayView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    play_id: NonEmpty
    sequence: Count
    quarter: Annotated[int, msgspec.Meta(ge=1, le=6)]
    clock: Clock | None = None
    down: Annotated[int, msgspec.Meta(ge=0, le=4)] | None = None
    yards_to_go: Annotated[int, msgspec.Meta(ge=0, le=99)] | None = None
    yardline_100: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    offense: TeamCode | None = None
    defense: TeamCode | None = None
    play_type: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] = "unknown"
    yards_gained: Int32 = 0
    touchdown: bool = False
    participants: list[ParticipantView] = []
    stats: list[CreditView] = []
    # The situation EP/WP need besides the play's own (shared/epwp.py): the score after the play.
    home_score: Count | None = None
    away_score: Count | None = None
    game_status: GameStatus | None = None


class RecordedView(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_recorded", tag_field="type"
):
    game: GameView
    play: PlayView
    revision: Revision = 1


class CorrectedView(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_corrected", tag_field="type"
):
    game: GameView
    play: PlayView
    revision: LaterRevision


class DeletedView(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_deleted", tag_field="type"):
    game: GameView
    play_id: NonEmpty
    revision: LaterRevision


EventView = RecordedView | CorrectedView | DeletedView


# Single events and batch records alike; a record that does not decode raises.
views_of = view_decoder(RecordedView, CorrectedView, DeletedView)
