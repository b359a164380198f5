"""What one play contributes to the aggregates: pure functions, no I/O.

A contribution maps (kind, subject, season, season type, week, stat) to an amount. The store
applies new - old, so corrections and deletes stay exact however often events are redelivered.

Every amount of one play falls in the play's own (season, season type, week), so the hot path
works on `Entries`, keyed by (kind, subject, stat), and adds the play's `Week` only where a
full key is needed (the stored contribution, a correction's difference, the totals' rows).
"""

from __future__ import annotations

from typing import Any

from services.analytics.view import DeletedView, EventView
from shared.stats import CREDITS, PRESSURE_IDS, SACK_IDS, amount

Key = tuple[str, str, int, str, int, str]  # kind, subject id, season, season type, week, stat
Contribution = dict[Key, float]
Entry = tuple[str, str, str]  # kind, subject id, stat: a key within one play's week
Entries = dict[Entry, float]
Week = tuple[int, str, int]  # season, season type, week
RUSH_TYPES = frozenset({"rush", "run"})
PASS_TYPES = frozenset({"pass", "sack"})
NOT_SCRIMMAGE = frozenset({"kickoff", "punt", "extra_point", "timeout", "end", "no_play"})
# A play is a success (the usual rule) on a touchdown, or when it gains this share of the
# distance to go: 40% on 1st down, 60% on 2nd, all of it on 3rd and 4th.
_SHARE = {1: 0.4, 2: 0.6}


# stat id -> ((stat name, fixed amount or None for the credit's yards), ...), built once.
_CREDIT_STATS: dict[int, tuple[tuple[str, float | None], ...]] = {
    sid: tuple((f"{group}.{field}", None if amt == "yards" else float(amt)) for group, field, amt in credits)
    for sid, credits in CREDITS.items()
}


def week_of(event: EventView) -> Week:
    g = event.game
    return (g.season, g.season_type, g.week)


def score(event: EventView, play_id: str) -> tuple[Entries, list[tuple[Any, ...]]]:
    """The play's entries and its `defender_plays` rows, in one pass (none for a delete).

    Defenders are the participants on defense, then the defense's credited players (stat ids
    from 25 on); each gets a snap, and a pressure when credited with a sack or QB hit.
    (A hot path: written for speed, entries in the order contribution() always had.)
    """
    if type(event) is DeletedView:
        return {}, []
    p = event.play  # type: ignore[union-attr]
    out: Entries = {}
    get = out.get
    defense = p.defense
    credited: list[tuple[str, str]] | None = None  # the defense's credited players, in order
    pressured: dict[str, float] | None = None  # player id -> sacks, for sack and QB-hit credits
    for credit in p.stats:
        pid = credit.player_id
        if pid is None:
            continue
        sid = credit.stat_id
        for stat, fixed in _CREDIT_STATS.get(sid, ()):
            value = credit.yards if fixed is None else fixed
            if value:
                key = ("player", pid, stat)
                out[key] = get(key, 0.0) + value
        if pid and sid >= 25:
            if defense and credit.team == defense:
                if credited is None:
                    credited = []
                credited.append((pid, credit.team))
            if sid in PRESSURE_IDS:
                if pressured is None:
                    pressured = {}
                extra = amount(CREDITS[sid][0], credit.yards) if sid in SACK_IDS else 0.0
                pressured[pid] = pressured.get(pid, 0.0) + extra
    named: dict[str, str] = {}
    for pp in p.participants:  # a loop, not a comprehension: no extra frame per play
        if pp.side == "defense":
            named[pp.player_id] = pp.team
    if credited is not None:
        for pid, team in credited:
            named.setdefault(pid, team)
    g = event.game
    season, season_type, week = g.season, g.season_type, g.week
    quarter, down, to_go, yardline, offense = p.quarter, p.down, p.yards_to_go, p.yardline_100, p.offense
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for pid, team in named.items():
        out[("player", pid, "defense.snaps")] = 1.0
        if pressured is not None and pid in pressured:
            append((season, play_id, pid, team, season_type, week, quarter, down, to_go, yardline, offense,
                    True, pressured[pid]))  # fmt: skip
        else:
            append((season, play_id, pid, team, season_type, week, quarter, down, to_go, yardline, offense,
                    False, 0.0))  # fmt: skip
    if pressured is not None:
        for pid in pressured:
            out[("player", pid, "defense.pressures")] = 1.0
    if offense and p.play_type not in NOT_SCRIMMAGE:
        out[("team", offense, "offense.plays")] = 1.0
        if p.yards_gained:
            out[("team", offense, "offense.yards")] = float(p.yards_gained)
        if p.touchdown:
            out[("team", offense, "offense.touchdowns")] = 1.0
        if p.touchdown or (
            p.down and p.yards_to_go and p.yards_gained >= _SHARE.get(p.down, 1.0) * p.yards_to_go
        ):
            out[("team", offense, "offense.successes")] = 1.0
        if p.play_type in RUSH_TYPES:
            out[("team", offense, "offense.runs")] = 1.0
        elif p.play_type in PASS_TYPES:
            out[("team", offense, "offense.passes")] = 1.0
    return out, rows


# Credits that make a player one of the play's ball carriers (passer, rusher, receiver, target).
_CARRIER_IDS = frozenset(
    sid
    for sid, credits in CREDITS.items()
    if any(group in ("passing", "rushing", "receiving") for group, _, _ in credits)
)
PLAY_COLUMNS = (
    "season", "play_id", "game_id", "home", "season_type", "week", "sequence", "quarter", "clock", "down",
    "yards_to_go", "yardline_100", "offense", "defense", "play_type", "yards_gained", "touchdown", "home_score",
    "away_score", "game_status", "carriers",
)  # fmt: skip


def play_row(event: EventView, play_id: str) -> tuple[Any, ...] | None:
    """The play's `analytics_plays` row without its values (None for a delete). Carriers are the
    offense's players credited with a passing, rushing or receiving stat, each once, in order."""
    if type(event) is DeletedView:
        return None
    p = event.play  # type: ignore[union-attr]
    g = event.game
    carriers: list[str] = []
    for credit in p.stats:
        pid = credit.player_id
        if pid and credit.stat_id in _CARRIER_IDS and credit.team == p.offense and pid not in carriers:
            carriers.append(pid)
    return (g.season, play_id, g.game_id, g.home, g.season_type, g.week, p.sequence, p.quarter, p.clock, p.down,
            p.yards_to_go, p.yardline_100, p.offense, p.defense, p.play_type, p.yards_gained, p.touchdown,
            p.home_score, p.away_score, p.game_status, carriers)  # fmt: skip


def entries(event: EventView) -> Entries:
    """Every total the event adds to, within its week; empty for a delete."""
    return score(event, "")[0]


def contribution(event: EventView) -> Contribution:
    """Every total the event adds to, by full key; empty for a delete."""
    return with_week(entries(event), week_of(event))


def defender_rows(event: EventView, play_id: str) -> list[tuple[Any, ...]]:
    """Rows of `defender_plays` for the event (none for a delete)."""
    return score(event, play_id)[1]


def with_week(entries: Entries, week: Week) -> Contribution:
    season, season_type, wk = week
    return {(kind, subject, season, season_type, wk, stat): v for (kind, subject, stat), v in entries.items()}


def delta(new: Contribution, old: Contribution) -> Contribution:
    """new - old, without the zero entries."""
    out = dict(new)
    for key, value in old.items():
        out[key] = out.get(key, 0.0) - value
    return {k: v for k, v in out.items() if v}
