"""The shapes of the EPA and tendency answers, as /openapi.json documents them (the gateway reads
these structs to describe the routes; tests check the answers against them).

EPA figures count the valued plays (those with an EPA: the model had valued the game); `plays`
counts every run and pass that matched the filters, `valued_plays` the valued ones.
"""

from __future__ import annotations

import msgspec


class EpaItem(msgspec.Struct, kw_only=True):
    # `team` for group=team; `player_id`, `name`, `position` and `team` (the lowest code of the
    # player's teams in the selection) for group=player.
    team: str | None = None
    player_id: str | None = None
    name: str | None = None
    position: str | None = None
    plays: int
    valued_plays: int
    epa_total: float | None  # null when no play is valued
    epa_per_play: float | None
    success_rate: float | None  # the share of valued plays with EPA > 0


class EpaList(msgspec.Struct):
    group: str  # team | player
    side: str  # offense | defense (defense: the EPA its opponents gained; lower is better)
    season_type: list[str]  # what was counted: REG unless asked, ALL for every game
    items: list[EpaItem]  # best first: most EPA per play on offense, least on defense


class Tendency(msgspec.Struct, kw_only=True):
    plays: int  # runs and passes (sacks are passes) with a down and a distance
    runs: int
    passes: int
    run_rate: float | None
    pass_rate: float | None
    yards_per_play: float | None
    valued_plays: int
    epa_total: float | None
    epa_per_play: float | None
    success_rate: float | None  # EPA > 0


class Situation(Tendency, kw_only=True):
    down: int  # 1-4
    distance: str  # short (1-3 yards to go), medium (4-7), long (8+)


class Bucket(msgspec.Struct):
    name: str
    yards_to_go_min: int
    yards_to_go_max: int


class Tendencies(msgspec.Struct):
    team: str  # the franchise's code today
    codes: list[str]  # every code of the franchise the answer counted (JAC and JAX, STL and LA)
    season_type: list[str]
    buckets: list[Bucket]
    overall: Tendency
    situations: list[Situation]  # by down, then distance; only those with plays
