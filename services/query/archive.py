"""What `snapline archive` moves of the query service's tables (shared/archive.py does the moving)."""

from __future__ import annotations

from services.query.archived import MARKS
from services.query.cache import GENERATIONS
from services.query.projection import SWAP_LOCK
from services.query.rebuild import TABLES
from shared.archive import SeasonOwner

OWNER = SeasonOwner(
    name="query",
    package=TABLES.package,
    swap_lock=SWAP_LOCK,
    keys={table: TABLES.checksums[table].key for table in ("plays", "games", "player_teams")},
    partitioned=("plays",),
    games="games",
    marks=MARKS,
    generations=GENERATIONS,
)
