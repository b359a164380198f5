"""What `snapline rebuild analytics` rebuilds: the aggregates, through this service's AggregateStore."""

from __future__ import annotations

import asyncio

from services.analytics.cache import AnswerCache
from services.analytics.store import SWAP_LOCK, AggregateStore
from shared.cache import redis_dependency
from shared.config import Settings
from shared.db import Pools
from shared.deps import Dependency
from shared.logging import get_logger
from shared.rebuild import Apply, Target
from shared.shadow import Checksum, OwnedTables

log = get_logger(__name__)
TABLES = OwnedTables(
    package="services.analytics",
    swap_lock=SWAP_LOCK,
    checksums={
        "analytics_play_contrib": Checksum(key=("play_id",)),
        # A total back at zero (a corrected or deleted play) is the same answer as no row: the
        # incremental store keeps such rows, a replay that sees only the last revision never makes them.
        "stat_totals": Checksum(
            key=("subject_kind", "subject_id", "season", "season_type", "week", "stat"), where="value <> 0"
        ),
        "defender_plays": Checksum(key=("season", "play_id", "player_id")),
        # Last name, team and position seen; games on different partitions may apply in another
        # order in a replay, so a player traded mid-season can differ (listed, not hidden).
        "players": Checksum(key=("player_id",), skip=("updated_at",)),
    },
    partitioned=("defender_plays",),
)


async def _noop() -> None:
    return None


def _applier(db: Dependency[Pools]) -> Apply:
    # The shadow's own writer: no swap to wait for, no cached answers to invalidate until the swap.
    return AggregateStore(db, _noop, swap_lock=None).apply_records


async def _invalidate_answers(settings: Settings) -> None:
    """Cached answers were computed from the old tables: bump the generation once swapped."""
    redis = redis_dependency(settings)
    redis.start()
    try:
        await asyncio.wait_for(redis.wait(), 30)
    except TimeoutError:
        log.warning("cache_invalidation_failed", error=f"redis unreachable: {redis.last_error}")
        return  # cached answers expire within TTL_SECONDS
    finally:
        if not redis.connected.is_set():
            await redis.stop()
    try:
        await AnswerCache(redis, settings.kafka.topic_prefix).bump()
    finally:
        await redis.stop()


TARGET = Target("analytics", TABLES, _applier, after_swap=_invalidate_answers)
