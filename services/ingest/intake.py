"""Turns a request body (one event, a JSON array, or NDJSON) into validated events.

Each item is validated on its own, so one bad event is rejected by index and field
while the rest of the request goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.errors import ApiError
from shared.events import PlayDeleted, PlayEvent, decoder, valid_clock, valid_team
from shared.jsonbody import check_value
from shared.teams import same_franchise

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_raw_one = msgspec.json.Decoder(msgspec.Raw)
_any = msgspec.json.Decoder()
MAX_DEPTH = 16  # an event nests 3 levels; formation and personnel a few more
SHOWN_REJECTED = 20  # rejected items a response lists (rejected_count has them all)
SHOWN_ERRORS = 10  # errors listed per rejected item
MAX_MESSAGE = 200  # characters of one error message or field


@dataclass(slots=True)
class Batch:
    """The events of one request that passed validation, and what was rejected."""

    events: list[tuple[int, PlayEvent]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.events) + len(self.rejected)


def describe(exc: msgspec.MsgspecError) -> dict[str, str]:
    """Split msgspec's message into the field it names (dotted, from `$`) and the problem."""
    message = str(exc)
    problem, sep, where = message.rpartition(" - at `")
    if not sep:
        return {"field": "", "message": message}
    path = where.rstrip("`").removeprefix("$").lstrip(".")
    return {"field": path, "message": problem}


def _clip(error: dict[str, str]) -> dict[str, str]:
    return {k: v if len(v) <= MAX_MESSAGE else v[: MAX_MESSAGE - 3] + "..." for k, v in error.items()}


def shown(rejected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first SHOWN_REJECTED rejected items, each with at most SHOWN_ERRORS clipped errors."""
    return [{"index": item["index"], "errors": [_clip(e) for e in item["errors"][:SHOWN_ERRORS]]}
            for item in rejected[:SHOWN_REJECTED]]  # fmt: skip


def _unstorable(raw: bytes | msgspec.Raw) -> dict[str, str] | None:
    """A NUL in a string of `raw`, which msgspec decodes and PostgreSQL cannot store; None if none."""
    try:
        check_value(_any.decode(raw), max_depth=MAX_DEPTH, what="the event")
    except ApiError as err:
        return dict(err.details[0])
    except (msgspec.DecodeError, RecursionError):
        return None  # the typed decode names it
    return None


def _check(event: PlayEvent) -> list[dict[str, str]]:
    """Rules a decoder does not check: team code and clock formats, and rules across fields."""
    game = event.game
    play = None if isinstance(event, PlayDeleted) else event.play
    # The usual event breaks no rule: one pass over its distinct team codes says so.
    codes = {game.home, game.away}
    if play is not None:
        codes.update(p.team for p in play.participants)
        codes.update(c.team for c in play.stats)
        codes.add(play.offense or game.home)
        codes.add(play.defense or game.home)
        if (all(map(valid_team, codes)) and not same_franchise(game.home, game.away)
                and (play.offense is None or not same_franchise(play.offense, play.defense))
                and (play.clock is None or valid_clock(play.clock))):  # fmt: skip
            return []
    elif all(map(valid_team, codes)) and not same_franchise(game.home, game.away):
        return []
    return _errors(event)


def _errors(event: PlayEvent) -> list[dict[str, str]]:
    """Every rule `event` breaks, each naming its field."""
    errors = []
    if same_franchise(event.game.home, event.game.away):
        errors.append({"field": "game.away", "message": "home and away must be different teams (franchises)"})
    teams: list[tuple[str, str | None]] = [("game.home", event.game.home), ("game.away", event.game.away)]
    if not isinstance(event, PlayDeleted):
        play = event.play
        teams += [("play.offense", play.offense), ("play.defense", play.defense)]
        teams += [(f"play.participants[{i}].team", p.team) for i, p in enumerate(play.participants)]
        teams += [(f"play.stats[{i}].team", c.team) for i, c in enumerate(play.stats)]
        if same_franchise(play.offense, play.defense):
            errors.append(
                {
                    "field": "play.defense",
                    "message": "offense and defense must be different teams (franchises)",
                }
            )
        if play.clock is not None and not valid_clock(play.clock):
            errors.append({"field": "play.clock", "message": f"{play.clock!r} is not a game clock (MM:SS)"})
    errors += [{"field": field, "message": f"{code!r} is not a team code (1-4 capital letters)"}
               for field, code in teams if code is not None and not valid_team(code)]  # fmt: skip
    return errors


def _add(batch: Batch, index: int, raw: bytes | msgspec.Raw, suspect: bool) -> None:
    try:
        event = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        batch.rejected.append({"index": index, "errors": [describe(exc)]})
        return
    except RecursionError:
        batch.rejected.append({"index": index, "errors": [_too_deep()]})
        return
    unstorable = _unstorable(raw) if suspect else None
    errors = [unstorable] if unstorable else _check(event) + _depth(event)
    if errors:
        batch.rejected.append({"index": index, "errors": errors})
    else:
        batch.events.append((index, event))


def _too_deep() -> dict[str, str]:
    return {"field": "", "message": f"nested deeper than {MAX_DEPTH} levels"}


def _depth(event: PlayEvent) -> list[dict[str, str]]:
    """Formation and personnel are free-form: bounded in depth (and NUL-free) like the rest."""
    play = None if isinstance(event, PlayDeleted) else event.play
    errors = []
    for name in ("formation", "personnel"):  # two levels below the event: play.<name>
        value = getattr(play, name, None)
        if value:
            try:
                check_value(value, max_depth=MAX_DEPTH - 2, what="the event")
            except ApiError as err:
                detail = err.details[0]
                errors.append(
                    {"field": f"play.{name}.{detail['field']}".rstrip("."), "message": detail["message"]}
                )
    return errors


def parse(body: bytes, content_type: str) -> Batch:
    """Validate every item of `body`; raises ApiError only when the body as a whole is unusable."""
    if not body.strip():
        raise ApiError(400, "empty_body", "the request body is empty; send one event, an array or NDJSON")
    batch = Batch()
    suspect = b"\\u0000" in body  # a NUL is rare: items are searched for one only when the body has it
    if content_type in NDJSON_TYPES:
        lines = [line for line in body.split(b"\n") if line.strip()]
        for index, line in enumerate(lines):
            _add(batch, index, line, suspect)
        return batch
    if content_type not in JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type or '(none)'} is not accepted; "
            "use application/json or application/x-ndjson",
        )
    try:
        items = _raw_list.decode(body) if body.lstrip()[:1] == b"[" else [_raw_one.decode(body)]
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", f"the body nests deeper than {MAX_DEPTH} levels") from None
    for index, raw in enumerate(items):
        _add(batch, index, raw, suspect)
    return batch
