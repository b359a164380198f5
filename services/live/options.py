"""Tunables of the live service that are not environment settings (tests shorten them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LiveOptions:
    """Timing and size limits of the live service."""

    heartbeat_seconds: float = 15.0
    # Messages waiting for one client; a client this far behind is disconnected, not waited for.
    client_queue_size: int = 512
    max_games_per_client: int = 64
    # Idle games' Redis keys expire; every new event of a game renews them.
    game_ttl_seconds: int = 7 * 24 * 3600
