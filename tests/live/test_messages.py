"""Message splitting and client-op parsing (no infrastructure)."""

from __future__ import annotations

import json

import pytest

from services.live.messages import split_message
from services.live.protocol import ProtocolError, Resume, Subscribe, parse
from tests.live.support import deleted, recorded


def test_split_message_splices_into_valid_json() -> None:
    head, tail = split_message(recorded("G1", 3, description='say "hi" \u00e9'))
    message = json.loads(head + b"12345678901234" + tail)
    assert list(message)[:3] == ["type", "game_id", "seq"]
    assert message["seq"] == 12345678901234
    assert message["description"] == 'say "hi" \u00e9'


def test_deleted_play_is_a_correction() -> None:
    head, tail = split_message(deleted("G1", 3, 2))
    assert json.loads(head + b"1" + tail) == {
        "type": "correction",
        "game_id": "G1",
        "seq": 1,
        "play_id": "G1:3",
        "revision": 2,
        "deleted": True,
    }


def test_parse_ops() -> None:
    assert parse('{"op":"subscribe","game_ids":["a","b"]}') == Subscribe(["a", "b"])
    assert parse('{"op":"resume","game_id":"a","after_seq":4}') == Resume("a", 4)
    with pytest.raises(ProtocolError) as err:
        parse('{"op":"resume","game_id":"a","after_seq":"4"}')
    assert err.value.code == "bad_request"
