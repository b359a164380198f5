"""What `snapline archive` moves of the analytics service's tables (shared/archive.py does the moving).

`players` stays: it holds one row per player, not per season (the last name, team and position seen).
"""

from __future__ import annotations

from services.analytics.rebuild import TABLES
from services.analytics.store import ARCHIVED, GENERATIONS, SWAP_LOCK
from shared.archive import SeasonOwner

OWNER = SeasonOwner(
    name="analytics",
    package=TABLES.package,
    swap_lock=SWAP_LOCK,
    keys={
        table: TABLES.checksums[table].key
        for table in (
            "analytics_play_contrib",
            "stat_totals",
            "defender_plays",
            "analytics_plays",
            "analytics_games",
        )
    },
    partitioned=("defender_plays", "analytics_plays"),
    games="analytics_games",
    marks=ARCHIVED,
    generations=GENERATIONS,
    # The defender index reloads a week whose generation moved (services/analytics/index.py).
    tag_patterns=("week:{season}:%",),
)
