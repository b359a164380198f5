"""Tunables of the live service that are not environment settings (tests shorten them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LiveOptions:
    """Timing and size limits of the live service."""

    heartbeat_seconds: float = 15.0
    # A WebSocket ping goes with every this many heartbeats (30 s); a client silent for that many
    # heartbeat intervals and a half (no pong, no op) is dropped.
    ping_every_heartbeats: int = 2
    # Messages waiting for one client; a client this far behind is disconnected, not waited for.
    client_queue_size: int = 512
    max_games_per_client: int = 64
    # Idle games' Redis keys expire; every new event of a game renews them.
    game_ttl_seconds: int = 7 * 24 * 3600
