"""What one play contributes to the aggregates: pure functions, no I/O.

A contribution maps (kind, subject, season, season type, week, stat) to an amount. The store
applies new - old, so corrections and deletes stay exact however often events are redelivered.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shared.events import Play, PlayDeleted, PlayEvent
from shared.stats import CREDITS, PRESSURE_IDS, SACK_IDS, amount

Key = tuple[str, str, int, str, int, str]  # kind, subject id, season, season type, week, stat
Contribution = dict[Key, float]
RUSH_TYPES = frozenset({"rush", "run"})
PASS_TYPES = frozenset({"pass", "sack"})


def successful(play: Play) -> bool:
    """The usual success rule: 40% of the distance on 1st down, 60% on 2nd, all of it on 3rd/4th."""
    if play.touchdown:
        return True
    if not play.down or not play.yards_to_go:
        return False
    share = {1: 0.4, 2: 0.6}.get(play.down, 1.0)
    return play.yards_gained >= share * play.yards_to_go


def contribution(event: PlayEvent) -> Contribution:
    """Every total the event adds to; empty for a delete."""
    if isinstance(event, PlayDeleted):
        return {}
    g, p = event.game, event.play
    out: Contribution = defaultdict(float)

    def add(kind: str, subject: str, stat: str, value: float) -> None:
        if value:
            out[(kind, subject, g.season, g.season_type, g.week, stat)] += value

    for credit in p.stats:
        if credit.player_id is None:
            continue
        for c in CREDITS.get(credit.stat_id, ()):
            add("player", credit.player_id, f"{c[0]}.{c[1]}", amount(c, credit.yards))
    for player_id in defenders(event):
        add("player", player_id, "defense.snaps", 1)
    for player_id, (pressure, _) in pressures(p).items():
        add("player", player_id, "defense.pressures", 1 if pressure else 0)
    if p.offense and p.play_type not in ("kickoff", "punt", "extra_point", "timeout", "end", "no_play"):
        add("team", p.offense, "offense.plays", 1)
        add("team", p.offense, "offense.yards", p.yards_gained)
        add("team", p.offense, "offense.touchdowns", 1 if p.touchdown else 0)
        add("team", p.offense, "offense.successes", 1 if successful(p) else 0)
        add("team", p.offense, "offense.runs", 1 if p.play_type in RUSH_TYPES else 0)
        add("team", p.offense, "offense.passes", 1 if p.play_type in PASS_TYPES else 0)
    return dict(out)


def defenders(event: PlayEvent) -> dict[str, str]:
    """Player id -> team of every defender the event names (participants on defense or credited)."""
    if isinstance(event, PlayDeleted):
        return {}
    p = event.play
    named = {pp.player_id: pp.team for pp in p.participants if pp.side == "defense"}
    if p.defense:
        for credit in p.stats:
            if credit.player_id and credit.team == p.defense and credit.stat_id >= 25:
                named.setdefault(credit.player_id, credit.team)
    return named


def pressures(play: Play) -> dict[str, tuple[bool, float]]:
    """Player id -> (pressured the passer, sacks credited) for the defenders credited on a play."""
    out: dict[str, tuple[bool, float]] = {}
    for credit in play.stats:
        if credit.player_id and credit.stat_id in PRESSURE_IDS:
            sacks = out.get(credit.player_id, (True, 0.0))[1]
            extra = amount(CREDITS[credit.stat_id][0], credit.yards) if credit.stat_id in SACK_IDS else 0.0
            out[credit.player_id] = (True, sacks + extra)
    return out


def defender_rows(event: PlayEvent, play_id: str) -> list[tuple[Any, ...]]:
    """Rows of `defender_plays` for the event (none for a delete)."""
    if isinstance(event, PlayDeleted):
        return []
    g, p = event.game, event.play
    credited = pressures(p)
    return [
        (g.season, play_id, player_id, team, g.season_type, g.week, p.quarter, p.down, p.yards_to_go,
         p.yardline_100, p.offense, *credited.get(player_id, (False, 0.0)))
        for player_id, team in defenders(event).items()
    ]  # fmt: skip


def delta(new: Contribution, old: Contribution) -> Contribution:
    """new - old, without the zero entries."""
    out = dict(new)
    for key, value in old.items():
        out[key] = out.get(key, 0.0) - value
    return {k: v for k, v in out.items() if v}
