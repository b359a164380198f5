"""What `snapline rebuild query` rebuilds: `plays`, `games` and `player_teams`, through this service's Projector."""

from __future__ import annotations

from services.query.archived import MARKS
from services.query.cache import GENERATIONS
from services.query.projection import SWAP_LOCK, Projector
from services.query.values import VALUE_COLUMNS
from shared.answers import after_swap
from shared.db import Pools
from shared.deps import Dependency
from shared.rebuild import Apply, Target
from shared.shadow import Checksum, OwnedTables

TABLES = OwnedTables(
    package="services.query",
    swap_lock=SWAP_LOCK,
    checksums={
        # EP/WP values are not compared: the shadow is written without them, and the service values
        # the swapped-in games in the background (services/query/values.py).
        "plays": Checksum(key=("play_id", "season"), skip=("projected_at", *VALUE_COLUMNS, "value_model")),
        "games": Checksum(key=("game_id",), skip=("updated_at", "value_model")),
        "player_teams": Checksum(key=("player_id", "season", "team")),
    },
    partitioned=("plays",),
    archived=MARKS,  # archived seasons stay archived: a replay's rows of them are left out of the swap
)


def _applier(db: Dependency[Pools]) -> Apply:
    return Projector(db, swap_lock=None).apply_records  # the shadow's own writer: no swap to wait for


TARGET = Target("query", TABLES, _applier, after_swap=after_swap(GENERATIONS))
