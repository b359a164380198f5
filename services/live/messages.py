"""Live messages built from play events, split around the seq that Redis assigns."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shared.events import GameView, SituationView, play_key, view_decoder

_encoder = msgspec.json.Encoder()


class Head(msgspec.Struct):
    """The routing part of a sequenced message."""

    game_id: str
    seq: int


head_decoder = msgspec.json.Decoder(Head)


# The live consumer's own view of an event: only what a message carries. Full events have the
# same field names, so everything below takes either.
class Recorded(msgspec.Struct, kw_only=True, gc=False, tag="play_recorded", tag_field="type"):
    game: GameView
    play: SituationView
    revision: int = 1


class Corrected(Recorded, tag="play_corrected"):
    pass


class Deleted(msgspec.Struct, kw_only=True, gc=False, tag="play_deleted", tag_field="type"):
    game: GameView
    play_id: str
    revision: int


views_of = view_decoder(Recorded, Corrected, Deleted)
_KINDS = {"play_recorded": "play", "play_corrected": "correction", "play_deleted": "correction"}


def play_fields(event: Any) -> dict[str, Any]:
    """The play as a live client sees it."""
    play = event.play
    return {
        "play_id": play_key(event),
        "revision": event.revision,
        "sequence": play.sequence,
        "quarter": play.quarter,
        "clock": play.clock,
        "down": play.down,
        "yards_to_go": play.yards_to_go,
        "yardline_100": play.yardline_100,
        "offense": play.offense,
        "defense": play.defense,
        "play_type": play.play_type,
        "yards_gained": play.yards_gained,
        "touchdown": play.touchdown,
        "description": play.description,
    }


def body(event: Any) -> tuple[str, dict[str, Any]]:
    """The message type and the fields after `seq` for one event (a full event or a view)."""
    tag = type(event).__struct_config__.tag
    if tag == "play_deleted":
        return "correction", {"play_id": play_key(event), "revision": event.revision, "deleted": True}
    return _KINDS[tag], play_fields(event)


def split_message(event: Any) -> tuple[bytes, bytes]:
    """The message JSON before and after the seq value, so Redis can splice the seq in verbatim."""
    kind, rest = body(event)
    head = _encoder.encode({"type": kind, "game_id": event.game.game_id})
    return head[:-1] + b',"seq":', b"," + _encoder.encode(rest)[1:]


def control(kind: str, **fields: Any) -> str:
    """An unsequenced message (ack, error, heartbeat) as text."""
    return _encoder.encode({"type": kind, **fields}).decode()


def error(code: str, message: str, **fields: Any) -> str:
    """An error message; the connection stays open."""
    return control("error", error={"code": code, "message": message}, **fields)


RELOAD_REASONS = ("trimmed", "ahead", "unknown_game", "not_live")


def reload(game_id: str, seq: int, reason: str) -> str:
    """Tell a client its copy of a game cannot be completed from the stream: load the game from the
    query API; live messages after `seq` follow (unless the game is unknown)."""
    return control("reload", game_id=game_id, seq=seq, reason=reason)


def heartbeat() -> str:
    """A heartbeat carrying the server time in epoch milliseconds."""
    return control("heartbeat", ts=int(time.time() * 1000))
