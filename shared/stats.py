"""GSIS stat ids: what each credit means for the platform's aggregates.

The meanings are the league's public data dictionary (as transcribed, for one, by nflgame's
statmap). Each id maps to (group, field, amount) contributions; `yards` means the credit's
yards. Ids absent here are kept on the play but add to no aggregate.
"""

from __future__ import annotations

from typing import Final

Contribution = tuple[str, str, float | str]  # (group, field, amount or "yards")

SACK_IDS: Final = frozenset({83, 84})
QB_HIT_IDS: Final = frozenset({110})
PRESSURE_IDS: Final = SACK_IDS | QB_HIT_IDS
PASSER_SACKED_IDS: Final = frozenset({20})

CREDITS: Final[dict[int, tuple[Contribution, ...]]] = {
    # rushing
    10: (("rushing", "attempts", 1), ("rushing", "yards", "yards")),
    11: (("rushing", "attempts", 1), ("rushing", "yards", "yards"), ("rushing", "touchdowns", 1)),
    12: (("rushing", "yards", "yards"),),
    13: (("rushing", "yards", "yards"), ("rushing", "touchdowns", 1)),
    # passing
    14: (("passing", "attempts", 1),),
    15: (("passing", "attempts", 1), ("passing", "completions", 1), ("passing", "yards", "yards")),
    16: (
        ("passing", "attempts", 1),
        ("passing", "completions", 1),
        ("passing", "yards", "yards"),
        ("passing", "touchdowns", 1),
    ),
    19: (("passing", "attempts", 1), ("passing", "interceptions", 1)),
    20: (("passing", "sacked", 1), ("passing", "sack_yards", "yards")),
    # receiving
    21: (("receiving", "receptions", 1), ("receiving", "yards", "yards")),
    22: (("receiving", "receptions", 1), ("receiving", "yards", "yards"), ("receiving", "touchdowns", 1)),
    23: (("receiving", "yards", "yards"),),
    24: (("receiving", "yards", "yards"), ("receiving", "touchdowns", 1)),
    115: (("receiving", "targets", 1),),
    # defense
    25: (("defense", "interceptions", 1),),
    26: (("defense", "interceptions", 1), ("defense", "touchdowns", 1)),
    27: (),
    28: (("defense", "touchdowns", 1),),
    79: (("defense", "tackles", 1),),
    80: (("defense", "tackles", 1),),
    82: (("defense", "assists", 1),),
    83: (("defense", "sacks", 1.0),),
    84: (("defense", "sacks", 0.5),),
    85: (("defense", "passes_defensed", 1),),
    91: (("defense", "forced_fumbles", 1),),
    110: (("defense", "qb_hits", 1),),
    120: (("defense", "tackles_for_loss", 1),),
}

CATEGORY: Final[dict[int, str]] = {
    10: "rush", 11: "rush", 14: "pass_attempt", 15: "pass_completion", 16: "pass_completion",
    19: "interception_thrown", 20: "sacked", 21: "reception", 22: "reception", 115: "target",
    25: "interception", 26: "interception", 79: "tackle", 80: "tackle", 82: "assist", 83: "sack",
    84: "half_sack", 85: "pass_defensed", 91: "forced_fumble", 110: "qb_hit", 120: "tfl",
}  # fmt: skip


def amount(contribution: Contribution, yards: int) -> float:
    """The amount a contribution adds for a credit of `yards` yards."""
    value = contribution[2]
    return float(yards) if value == "yards" else float(value)
