"""Helpers for the live tests: events, producing them, and reading a WebSocket with deadlines."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiokafka import AIOKafkaProducer

from shared.config import Settings
from shared.events import Game, Play, PlayCorrected, PlayDeleted, PlayEvent, PlayRecorded, encoder
from shared.kafka import HISTORY_HEADER

PLAY_TYPES = ("play", "correction")


def game(game_id: str) -> Game:
    return Game(game_id=game_id, season=2024, season_type="REG", week=1, home="KC", away="BUF")


def play(n: int, **changes: Any) -> Play:
    fields: dict[str, Any] = {
        "play_id": str(n),
        "sequence": n,
        "quarter": 1,
        "clock": f"14:0{n % 10}",
        "down": 1,
        "yards_to_go": 10,
        "yardline_100": 75,
        "offense": "KC",
        "defense": "BUF",
        "play_type": "pass",
        "yards_gained": n,
        "description": f"play {n}",
    }
    return Play(**(fields | changes))


def recorded(game_id: str, n: int, **changes: Any) -> PlayRecorded:
    return PlayRecorded(
        event_id=f"{game_id}-{n}-1",
        occurred_at=datetime.now(UTC),
        game=game(game_id),
        play=play(n, **changes),
    )


def corrected(game_id: str, n: int, revision: int, **changes: Any) -> PlayCorrected:
    return PlayCorrected(
        event_id=f"{game_id}-{n}-{revision}",
        occurred_at=datetime.now(UTC),
        game=game(game_id),
        play=play(n, **changes),
        revision=revision,
    )


def deleted(game_id: str, n: int, revision: int) -> PlayDeleted:
    return PlayDeleted(
        event_id=f"{game_id}-{n}-{revision}-del",
        occurred_at=datetime.now(UTC),
        game=game(game_id),
        play_id=str(n),
        revision=revision,
    )


async def produce(
    producer: AIOKafkaProducer, settings: Settings, *events: PlayEvent, history: bool = False
) -> None:
    """Send events keyed by game id, as ingest does, and wait until Kafka has them."""
    headers = [HISTORY_HEADER] if history else None
    for event in events:
        await producer.send_and_wait(
            settings.kafka.plays_topic,
            encoder.encode(event),
            key=event.game.game_id.encode(),
            headers=headers,
        )


async def receive(
    ws: ClientWebSocketResponse, types: tuple[str, ...], seconds: float = 15.0
) -> dict[str, Any]:
    """The next message of one of `types`, skipping the others (heartbeats, acks)."""
    async with asyncio.timeout(seconds):
        while True:
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r}"
            data: dict[str, Any] = json.loads(msg.data)
            if data["type"] in types:
                return data


async def plays(ws: ClientWebSocketResponse, count: int, seconds: float = 15.0) -> list[dict[str, Any]]:
    """The next `count` play or correction messages."""
    return [await receive(ws, PLAY_TYPES, seconds) for _ in range(count)]


async def nothing_more(
    ws: ClientWebSocketResponse, within: float = 0.5, types: tuple[str, ...] = PLAY_TYPES
) -> None:
    """Assert no message of `types` (plays and corrections) arrives within `within` seconds."""
    try:
        extra = await receive(ws, types, seconds=within)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {extra}")


async def subscribe(ws: ClientWebSocketResponse, *game_ids: str) -> dict[str, Any]:
    """Subscribe; the replies merged: `subscribed` for known games, `unknown` for the games the
    `unknown_game` error named (followed all the same, from seq 0)."""
    await ws.send_json({"op": "subscribe", "game_ids": list(game_ids)})
    merged: dict[str, Any] = {"type": "subscribed", "game_ids": [], "seq": {}, "unknown": []}
    while set(merged["game_ids"]) | set(merged["unknown"]) != set(game_ids):
        reply = await receive(ws, ("subscribed", "error"))
        if reply["type"] == "error":
            assert reply["error"]["code"] == "unknown_game", reply
            merged["unknown"] += reply["game_ids"]
            merged["seq"].update({g: 0 for g in reply["game_ids"]})
        else:
            merged["game_ids"] += reply["game_ids"]
            merged["seq"].update(reply["seq"])
    return merged
