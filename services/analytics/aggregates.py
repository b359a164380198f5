"""What one play contributes to the aggregates: pure functions, no I/O.

A contribution maps (kind, subject, season, season type, week, stat) to an amount. The store
applies new - old, so corrections and deletes stay exact however often events are redelivered.
"""

from __future__ import annotations

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


# stat id -> ((stat name, fixed amount or None for the credit's yards), ...), built once.
_CREDIT_STATS: dict[int, tuple[tuple[str, float | None], ...]] = {
    sid: tuple((f"{group}.{field}", None if amt == "yards" else float(amt)) for group, field, amt in credits)
    for sid, credits in CREDITS.items()
}
NOT_SCRIMMAGE = frozenset({"kickoff", "punt", "extra_point", "timeout", "end", "no_play"})


def contribution(event: PlayEvent) -> Contribution:
    """Every total the event adds to; empty for a delete. (A hot path: written for speed.)"""
    if isinstance(event, PlayDeleted):
        return {}
    g, p = event.game, event.play
    season, season_type, week = g.season, g.season_type, g.week
    out: Contribution = {}
    get = out.get
    for credit in p.stats:
        pid = credit.player_id
        if pid is None:
            continue
        for stat, fixed in _CREDIT_STATS.get(credit.stat_id, ()):
            value = credit.yards if fixed is None else fixed
            if value:
                key = ("player", pid, season, season_type, week, stat)
                out[key] = get(key, 0.0) + value
    for pid in defenders(event):
        out[("player", pid, season, season_type, week, "defense.snaps")] = 1.0
    for pid in pressures(p):
        out[("player", pid, season, season_type, week, "defense.pressures")] = 1.0
    if p.offense and p.play_type not in NOT_SCRIMMAGE:
        team = (
            ("offense.plays", 1), ("offense.yards", p.yards_gained), ("offense.touchdowns", p.touchdown),
            ("offense.successes", successful(p)), ("offense.runs", p.play_type in RUSH_TYPES),
            ("offense.passes", p.play_type in PASS_TYPES),
        )  # fmt: skip
        for stat, value in team:
            if value:
                out[("team", p.offense, season, season_type, week, stat)] = float(value)
    return out


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
