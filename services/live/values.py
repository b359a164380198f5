"""EP/WP on live `play` and `correction` messages (shared/epwp.py computes them, as for query).

A play's "before" values need the score before it (the play before it, in its game), and the
play before it gets its "after" values only now that this snap's situation is known. So each live
instance keeps the plays it has seen of each game it sequences (a game is ~180 small situations;
at most `games` of them, least recently played dropped first, a game dropped once final), and
values a window: the previous valued play, what lies between, and the new play. A message then
carries its own values (the "after" ones null until known, unless the play scored or ended the
game) and `previous`: the after-values of the snap before it. An instance that has not seen the
start of a game (a restart, a partition moved to it) sends no values for the first play it sees.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shared.epwp import EMPTY_VALUES, ModelFile, Snap, valued

VALUES_SECONDS = Histogram(
    "snapline_live_values_seconds",
    "Time to compute the EP/WP of one batch of live events",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
VALUE_GAMES = Gauge("snapline_live_value_games", "Games whose plays this instance holds for EP/WP")
VALUED = Counter("snapline_live_valued_total", "Live play events by whether they got EP/WP", ["outcome"])


@dataclass(slots=True)
class _Game:
    home: str
    plays: dict[str, Any] = field(default_factory=dict)  # play id -> the event's play (a view)


def _opening(play: Any) -> bool:
    """Whether a play is where a game starts (so the score before it is 0-0)."""
    return bool(play.sequence <= 1 or (play.quarter == 1 and play.clock in ("15:00", None)))


class LiveValues:
    def __init__(self, models: ModelFile, games: int = 512) -> None:
        self.models = models
        self._limit = games
        self._games: OrderedDict[str, _Game] = OrderedDict()

    def __repr__(self) -> str:
        return f"LiveValues(games={len(self._games)}, model={self.models.detail()!r})"

    def extras(self, events: list[Any]) -> list[dict[str, Any] | None]:
        """The fields each event's message adds (values and `previous`), in event order."""
        started = time.perf_counter()
        out = [self._one(e) for e in events]
        VALUES_SECONDS.observe(time.perf_counter() - started)
        VALUE_GAMES.set(len(self._games))
        return out

    def _one(self, event: Any) -> dict[str, Any] | None:
        model = self.models.model
        game_id = event.game.game_id
        ctx = self._games.get(game_id)
        if ctx is None:
            ctx = self._games[game_id] = _Game(event.game.home)
            while len(self._games) > self._limit:
                self._games.popitem(last=False)
        self._games.move_to_end(game_id)
        play = getattr(event, "play", None)
        if play is None:  # a delete
            ctx.plays.pop(event.play_id, None)
            return None
        ctx.plays[play.play_id] = play
        if model is None:
            return None
        ordered = sorted(ctx.plays.values(), key=lambda p: (p.sequence, p.play_id))
        at = next(i for i, p in enumerate(ordered) if p.play_id == play.play_id)
        if play.game_status == "final" and at == len(ordered) - 1:
            self._games.pop(game_id, None)  # nothing follows the last play
        if not valued(play):
            return None
        start = at - 1
        while start >= 0 and not valued(ordered[start]):
            start -= 1
        start = max(start, 0)
        end = at + 1
        while end < len(ordered) and not valued(ordered[end]):
            end += 1
        window = ordered[start : min(end + 1, len(ordered))]
        before = _score_before(ordered, start)
        if before is None and start < at:  # the previous snap's score-before is unknown: value this one alone
            start, window = at, ordered[at : min(end + 1, len(ordered))]
            before = _score_before(ordered, at)
        if before is None:
            VALUED.labels("no_context").inc()
            return dict(EMPTY_VALUES)
        opening = Snap(
            sequence=-1, play_type="kickoff", down=None, home_score=before[0], away_score=before[1]
        )
        values = model.game_values(ctx.home, [opening, *window])
        mine = values[1 + at - start]
        if mine is None:
            return None
        VALUED.labels("valued").inc()
        fields: dict[str, Any] = mine.as_dict()
        prev = values[1]
        if start < at and prev is not None:
            fields["previous"] = {"play_id": f"{game_id}:{ordered[start].play_id}", "ep_after": prev.ep_after,
                                  "epa": prev.epa, "wp_after": prev.wp_after}  # fmt: skip
        return fields


def _score_before(ordered: list[Any], index: int) -> tuple[int, int] | None:
    """The score before `ordered[index]`: the last score given before it, 0-0 from a game's start,
    None when this instance has not seen enough of the game to know."""
    for p in reversed(ordered[:index]):
        if p.home_score is not None and p.away_score is not None:
            return p.home_score, p.away_score
    first = ordered[0]
    return (0, 0) if _opening(first) else None
