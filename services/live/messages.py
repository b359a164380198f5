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
        "drive": play.drive,
        "home": event.game.home,
        "away": event.game.away,
        "home_score": play.home_score,
        "away_score": play.away_score,
        "game_status": play.game_status,
    }


def body(event: Any, extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The message type and the fields after `seq` for one event (a full event or a view), with
    `extra` (its EP/WP values, services/live/values.py) after the play's own fields."""
    tag = type(event).__struct_config__.tag
    if tag == "play_deleted":
        return "correction", {"play_id": play_key(event), "revision": event.revision, "deleted": True}
    fields = play_fields(event)
    if extra:
        fields.update(extra)
    return _KINDS[tag], fields


def _split(kind: str, game_id: str, rest: dict[str, Any]) -> tuple[bytes, bytes]:
    head = _encoder.encode({"type": kind, "game_id": game_id})
    return head[:-1] + b',"seq":', b"," + _encoder.encode(rest)[1:]


def split_message(event: Any, extra: dict[str, Any] | None = None) -> tuple[bytes, bytes]:
    """The message JSON before and after the seq value, so Redis can splice the seq in verbatim."""
    kind, rest = body(event, extra)
    return _split(kind, event.game.game_id, rest)


class Followups(msgspec.Struct, gc=False):
    """What a play's event may add after its own message: a `score` and a `game_state`, each with a
    signature of the fields whose change sends it (the script compares it with the game's last)."""

    order: int  # the play's sequence: only the game's latest play moves its score and state
    score_sig: bytes = b""
    score: tuple[bytes, bytes] = (b"", b"")
    state_sig: bytes = b""
    state: tuple[bytes, bytes] = (b"", b"")


def followups(event: Any) -> Followups | None:
    """The `score` and `game_state` messages a play could send (None for a delete).

    `score` goes out when the score changes; `game_state` when the status, quarter, possession
    or down and distance change. The situation is the play's (the snap's down, distance and
    field position), the score and status those after it. Both come from what the feed reports:
    an event without a score sends no `score`, one without a game status no `game_state`.
    """
    play = getattr(event, "play", None)
    if play is None:
        return None
    game = event.game
    status = play.game_status
    out = Followups(order=play.sequence)
    scored = play.home_score is not None and play.away_score is not None
    if scored:
        out.score_sig = f"{play.home_score}-{play.away_score}".encode()
        out.score = _split("score", game.game_id, {
            "home": game.home, "away": game.away, "home_score": play.home_score,
            "away_score": play.away_score, "quarter": play.quarter, "clock": play.clock,
            "play_id": play_key(event),
        })  # fmt: skip
    if status is None:
        return out
    out.state_sig = f"{status}|{play.quarter}|{play.offense}|{play.down}|{play.yards_to_go}".encode()
    out.state = _split("game_state", game.game_id, {
        "status": status, "quarter": play.quarter, "clock": play.clock, "possession": play.offense,
        "down": play.down, "yards_to_go": play.yards_to_go, "yardline_100": play.yardline_100,
        "drive": play.drive, "home": game.home, "away": game.away, "home_score": play.home_score,
        "away_score": play.away_score, "play_id": play_key(event),
    })  # fmt: skip
    return out


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
