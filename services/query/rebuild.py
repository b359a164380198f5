"""What `snapline rebuild query` rebuilds: `plays`, `games` and `player_teams`, through this service's Projector."""

from __future__ import annotations

import asyncpg

from services.query.cache import GENERATIONS
from services.query.projection import SWAP_LOCK, Projector
from shared.answers import bump_all
from shared.config import Settings
from shared.db import Pools
from shared.deps import Dependency
from shared.rebuild import Apply, Target
from shared.shadow import Checksum, OwnedTables

TABLES = OwnedTables(
    package="services.query",
    swap_lock=SWAP_LOCK,
    checksums={
        "plays": Checksum(key=("play_id", "season"), skip=("projected_at",)),
        "games": Checksum(key=("game_id",), skip=("updated_at",)),
        "player_teams": Checksum(key=("player_id", "season", "team")),
    },
    partitioned=("plays",),
)


def _applier(db: Dependency[Pools]) -> Apply:
    return Projector(db, swap_lock=None).apply_records  # the shadow's own writer: no swap to wait for


async def _invalidate_answers(settings: Settings) -> None:
    """Cached answers were computed from the old tables: every generation moves once swapped."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await bump_all(conn, GENERATIONS)
    finally:
        await conn.close()


TARGET = Target("query", TABLES, _applier, after_swap=_invalidate_answers)
