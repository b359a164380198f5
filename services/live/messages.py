"""Live messages built from play events, split around the seq that Redis assigns."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shared.events import PlayCorrected, PlayDeleted, PlayEvent, PlayRecorded, play_key

_encoder = msgspec.json.Encoder()


class Head(msgspec.Struct):
    """The routing part of a sequenced message."""

    game_id: str
    seq: int


head_decoder = msgspec.json.Decoder(Head)


def play_fields(event: PlayRecorded | PlayCorrected) -> dict[str, Any]:
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


def body(event: PlayEvent) -> tuple[str, dict[str, Any]]:
    """The message type and the fields after `seq` for one event."""
    match event:
        case PlayRecorded():
            return "play", play_fields(event)
        case PlayCorrected():
            return "correction", play_fields(event)
        case PlayDeleted():
            return "correction", {"play_id": play_key(event), "revision": event.revision, "deleted": True}


def split_message(event: PlayEvent) -> tuple[bytes, bytes]:
    """The message JSON before and after the seq value, so Redis can splice the seq in verbatim."""
    kind, rest = body(event)
    head = _encoder.encode({"type": kind, "game_id": event.game.game_id})
    return head[:-1] + b',"seq":', b"," + _encoder.encode(rest)[1:]


def control(kind: str, **fields: Any) -> str:
    """An unsequenced message (ack, error, heartbeat) as text."""
    return _encoder.encode({"type": kind, **fields}).decode()


def error(code: str, message: str) -> str:
    """An error message; the connection stays open."""
    return control("error", error={"code": code, "message": message})


def heartbeat() -> str:
    """A heartbeat carrying the server time in epoch milliseconds."""
    return control("heartbeat", ts=int(time.time() * 1000))
