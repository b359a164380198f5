"""What `snapline rebuild analytics` rebuilds: the aggregates, through this service's AggregateStore."""

from __future__ import annotations

from services.analytics.store import ARCHIVED, GENERATIONS, SWAP_LOCK, AggregateStore
from shared.answers import after_swap
from shared.db import Pools
from shared.deps import Dependency
from shared.rebuild import Apply, Target
from shared.shadow import Checksum, OwnedTables
from shared.valuing import VALUE_COLUMNS

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
        # EP/WP values are not compared: the shadow is written without them, and the service values
        # the swapped-in games in the background (shared/valuing.py).
        "analytics_plays": Checksum(key=("season", "play_id"), skip=(*VALUE_COLUMNS, "value_model")),
        "analytics_games": Checksum(key=("game_id",), skip=("value_model",)),
    },
    partitioned=("defender_plays", "analytics_plays"),
    archived=ARCHIVED,  # archived seasons stay archived: a replay's rows of them are left out of the swap
)


def _applier(db: Dependency[Pools]) -> Apply:
    return AggregateStore(db, swap_lock=None).apply_records  # the shadow's own writer: no swap to wait for


TARGET = Target("analytics", TABLES, _applier, after_swap=after_swap(GENERATIONS))
