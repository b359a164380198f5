"""The event contract: play events as tagged, frozen msgspec Structs (schema version 1).

Evolution rule: add fields with defaults only; never rename a field or change its type.
A breaking change is a new struct or a new versioned topic beside this one.
Decoders ignore unknown fields so an older consumer can read a newer producer's events.
Structs are `gc=False`: events hold no reference cycles, and leaving thousands of decoded events
per batch out of the cyclic collector more than halved decoding time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec

SCHEMA_VERSION = 1

SeasonType = Literal["PRE", "REG", "POST"]
Side = Literal["offense", "defense", "special", "unknown"]
# A game's status after a play: `halftime` after the play that ends the first half, `final` after
# the last play; `scheduled` is a game's status before its first play (live's game_state).
GameStatus = Literal["scheduled", "in_progress", "halftime", "final"]
# Patterns are checked once at the edge (ingest) by `valid_team`/`valid_clock`, not by every
# decoder: regex constraints tripled the decode cost that each consumer pays per event.
TeamCode = Annotated[
    str, msgspec.Meta(min_length=1, max_length=4, extra_json_schema={"pattern": "^[A-Z]{1,4}$"})
]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Clock = Annotated[
    str, msgspec.Meta(min_length=4, max_length=5, extra_json_schema={"pattern": r"^\d{1,2}:\d{2}$"})
]
# Integers the stores keep as PostgreSQL `integer`: a larger one would fail in every consumer.
INT32_MAX = 2**31 - 1
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=INT32_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
Revision = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
LaterRevision = Annotated[int, msgspec.Meta(ge=2, le=INT32_MAX)]


class Game(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The game a play belongs to."""

    game_id: NonEmpty
    season: Annotated[int, msgspec.Meta(ge=1920, le=2100)]
    season_type: SeasonType
    week: Annotated[int, msgspec.Meta(ge=0, le=30)]
    home: TeamCode
    away: TeamCode


class Participant(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A player the feed names on a play."""

    player_id: NonEmpty
    team: TeamCode
    side: Side = "unknown"
    name: str | None = None
    position: str | None = None


class StatCredit(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One GSIS stat credit; `player_id` is None for a team-level credit."""

    stat_id: Annotated[int, msgspec.Meta(ge=1, le=9999)]  # ids unknown to shared.stats are kept, not counted
    team: TeamCode
    player_id: str | None = None
    yards: Int32 = 0
    value: float = 1.0
    category: str | None = None


class Play(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Situation and outcome of one play, as the feed reports it."""

    play_id: NonEmpty
    sequence: Count
    drive: Count | None = None
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
    turnover: bool = False
    penalty: bool = False
    description: str = ""
    formation: dict[str, Any] | None = None
    personnel: dict[str, Any] | None = None
    participants: list[Participant] = []
    stats: list[StatCredit] = []
    # The score after the play, and the game's status after it. Added with defaults (a feed that
    # does not send them leaves them None): the score a viewer sees is the feed's, not a sum of
    # the plays a consumer happened to receive.
    home_score: Count | None = None
    away_score: Count | None = None
    game_status: GameStatus | None = None


class PlayRecorded(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_recorded", tag_field="type"
):
    """A play happened (revision 1) or was restated by the feed (a higher revision)."""

    event_id: NonEmpty
    occurred_at: datetime
    game: Game
    play: Play
    revision: Revision = 1
    source: str = "feed"
    schema_version: int = SCHEMA_VERSION


class PlayCorrected(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_corrected", tag_field="type"
):
    """The feed replaced a play it had sent: this revision supersedes every lower one."""

    event_id: NonEmpty
    occurred_at: datetime
    game: Game
    play: Play
    revision: LaterRevision
    source: str = "feed"
    schema_version: int = SCHEMA_VERSION


class PlayDeleted(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_deleted", tag_field="type"):
    """The feed withdrew a play; it supersedes every lower revision of it."""

    event_id: NonEmpty
    occurred_at: datetime
    game: Game
    play_id: NonEmpty
    revision: LaterRevision
    reason: str = ""
    source: str = "feed"
    schema_version: int = SCHEMA_VERSION


PlayEvent = PlayRecorded | PlayCorrected | PlayDeleted


class PlayEventBatch(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="play_event_batch", tag_field="type"
):
    """Several events of one game in one Kafka record, in feed order.

    Ingest publishes one per game and request: Kafka and the consumers then pay their
    per-record cost once per batch instead of once per play. Consumers read single events too.
    """

    game_id: NonEmpty
    events: list[PlayEvent]


encoder = msgspec.json.Encoder()
decoder: msgspec.json.Decoder[PlayEvent] = msgspec.json.Decoder(PlayEvent)
record_decoder: msgspec.json.Decoder[PlayEvent | PlayEventBatch] = msgspec.json.Decoder(
    PlayEvent | PlayEventBatch
)


class GameView(msgspec.Struct, kw_only=True, gc=False):
    """A consumer's view of `Game`: the same fields, no constraints (checked at ingest)."""

    game_id: str
    season: int
    season_type: str
    week: int
    home: str
    away: str


class SituationView(msgspec.Struct, kw_only=True, gc=False):
    """A consumer's view of a `Play`'s situation and outcome, without participants and credits."""

    play_id: str
    sequence: int
    drive: int | None = None
    quarter: int | None = None
    clock: str | None = None
    down: int | None = None
    yards_to_go: int | None = None
    yardline_100: int | None = None
    offense: str | None = None
    defense: str | None = None
    play_type: str = "unknown"
    yards_gained: int = 0
    touchdown: bool = False
    turnover: bool = False
    penalty: bool = False
    description: str = ""
    home_score: int | None = None
    away_score: int | None = None
    game_status: str | None = None


def view_decoder(*views: type) -> Callable[[Iterable[bytes]], list[Any]]:
    """Decode record values into a consumer's own narrow event types instead of full events.

    `views` are Structs tagged like the events they stand for (`tag="play_recorded"`, ...,
    `tag_field="type"`) holding only the fields that consumer reads: msgspec skips the others
    without building them. Records were validated at ingest and carry every field, so views
    need no constraints. Single events and batch records are both read; a record that does
    not decode raises, as with `events_of`.
    """
    union: Any = Union[views]  # noqa: UP007 - built from a runtime tuple
    batch = msgspec.defstruct("BatchView", [("events", list[union])], tag="play_event_batch",
                              tag_field="type", kw_only=True, gc=False)  # fmt: skip
    decoder_: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[(*views, batch)])

    def decode(records: Iterable[bytes]) -> list[Any]:
        out: list[Any] = []
        for value in records:
            decoded = decoder_.decode(value)
            if type(decoded) is batch:
                out.extend(decoded.events)  # type: ignore[attr-defined]
            else:
                out.append(decoded)
        return out

    return decode


def events_of(records: Iterable[bytes]) -> list[PlayEvent]:
    """The events in Kafka record values (single events or batches), in record order."""
    out: list[PlayEvent] = []
    for value in records:
        decoded = record_decoder.decode(value)
        if isinstance(decoded, PlayEventBatch):
            out.extend(decoded.events)
        else:
            out.append(decoded)
    return out


_TEAM_CODES: set[str] = set()  # codes already seen valid: a few dozen cover every event


def valid_team(code: str) -> bool:
    """A team code is 1-4 capital letters (PHI, LA, JAX)."""
    if code in _TEAM_CODES:
        return True
    valid = code.isascii() and code.isalpha() and code.isupper()
    if valid and len(_TEAM_CODES) < 4096:
        _TEAM_CODES.add(code)
    return valid


def valid_clock(clock: str) -> bool:
    """A game clock is M:SS or MM:SS with seconds below 60."""
    minutes, sep, seconds = clock.partition(":")
    return bool(sep) and minutes.isdigit() and len(seconds) == 2 and seconds.isdigit() and int(seconds) < 60


def play_key(event: Any) -> str:
    """The platform-wide id of the play an event is about: `<game_id>:<feed play id>`.

    Takes full events and consumers' views alike: a delete names its play at the top level.
    """
    play = getattr(event, "play", None)
    feed_id = event.play_id if play is None else play.play_id
    return f"{event.game.game_id}:{feed_id}"


E = TypeVar("E")


def latest_by_play(events: Iterable[E]) -> dict[str, E]:
    """Play key -> the highest revision of that play in `events` (full events or views), in
    first-seen order."""
    best: dict[str, Any] = {}
    get = best.get
    for event in events:
        key = play_key(event)
        current = get(key)
        if current is None or event.revision > current.revision:  # type: ignore[attr-defined]
            best[key] = event
    return best


def latest_revisions(events: Iterable[E]) -> list[E]:
    """The highest revision of each play in `events` (full events or views), in first-seen order."""
    return list(latest_by_play(events).values())


def decode_item(item: Any) -> PlayEvent:
    """Validate one already-parsed JSON value as a play event (raises msgspec.ValidationError)."""
    event: PlayEvent = msgspec.convert(item, PlayEvent, strict=True)
    return event


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the events, exported for feed providers."""
    schema: dict[str, Any] = msgspec.json.schema(PlayEvent)
    schema["$id"] = f"https://snapline.dev/schemas/play-event.v{SCHEMA_VERSION}.json"
    schema["title"] = "Snapline play event"
    return schema
