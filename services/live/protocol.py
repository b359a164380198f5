"""What a client may send on /v1/live, parsed into typed ops or a ProtocolError that says why."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

GameId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
GameIds = Annotated[list[GameId], msgspec.Meta(min_length=1, max_length=64)]


class Subscribe(msgspec.Struct, frozen=True, tag="subscribe", tag_field="op"):
    """Follow games from now on."""

    game_ids: GameIds


class Unsubscribe(msgspec.Struct, frozen=True, tag="unsubscribe", tag_field="op"):
    """Stop following games."""

    game_ids: GameIds


class Resume(msgspec.Struct, frozen=True, tag="resume", tag_field="op"):
    """Replay a game's messages after `after_seq`, then follow it."""

    game_id: GameId
    after_seq: Annotated[int, msgspec.Meta(ge=0)]


ClientOp = Subscribe | Unsubscribe | Resume
OPS = ("subscribe", "unsubscribe", "resume")


class ProtocolError(Exception):
    """A client message the server cannot act on; answered with an error message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse(raw: str | bytes) -> ClientOp:
    """The op in one client message."""
    try:
        data: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_json", f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "op" not in data:
        raise ProtocolError("bad_request", 'send a JSON object with an "op": ' + ", ".join(OPS))
    if data["op"] not in OPS:
        raise ProtocolError("unknown_op", f"unknown op {data['op']!r}; use one of: {', '.join(OPS)}")
    try:
        op: ClientOp = msgspec.convert(data, ClientOp, strict=True)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_request", f"{data['op']}: {exc}") from None
    return op
