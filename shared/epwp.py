"""Expected points (EP) and win probability (WP): one definition of the features, the labels and
each play's values, used by the fit (`snapline model fit`), by query (stored with every play) and
by live (on `play` messages).

The method (docs/expected-points.md has the reasoning and the calibration tables):
- EP is the value of the next score in the same half, from the offense's side, as nflfastR frames
  it: seven outcomes (touchdown 7, field goal 3, safety 2, none 0, and the opponent's -2, -3, -7)
  predicted from down, distance, field position and time left in the half; EP is the sum of each
  outcome's probability times its points.
- WP is the probability that the offense wins, from the score difference, the time left in the
  game and the half, field position, down and distance, and whether the offense is at home.
- A play's "after" values are the next scrimmage play's "before" values (negated, or one minus,
  when the ball changed hands); a scoring play's EP after is the score's points; the last play of
  a half has EP after 0, the last play of a game has WP after 1, 0 or 0.5 from the final score.
  Until the next snap arrives a live play's "after" values are null ("once they exist").
Both models are gradient-boosted trees (LightGBM): they find the interactions (4th down near the
goal line, the last two minutes) that a linear model would need hand-made terms for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from prometheus_client import Counter, Gauge

from shared.logging import get_logger

log = get_logger(__name__)

FORMAT = "snapline-epwp/1"
# The next score's points, by class: the offense's touchdown, field goal and safety, no score,
# and the defense's safety, field goal and touchdown.
SCORE_POINTS = np.array([7.0, 3.0, 2.0, 0.0, -2.0, -3.0, -7.0])
NO_SCORE = 3
EP_FEATURES = ("down", "yards_to_go", "yardline_100", "half_seconds", "goal_to_go", "under_two")
WP_FEATURES = (
    "score_diff", "game_seconds", "half_seconds", "yardline_100", "down", "yards_to_go",
    "offense_home", "diff_per_minute", "ep",
)  # fmt: skip
# Plays without a down (kickoffs, tries, timeouts, quarter ends) have no line of scrimmage to value.
UNVALUED_TYPES = frozenset({"kickoff", "extra_point", "timeout", "end"})


class Situation(Protocol):
    """What a play must say to be valued: a stored row, an event's view, or a test's record."""

    @property
    def sequence(self) -> int: ...
    @property
    def quarter(self) -> int | None: ...
    @property
    def clock(self) -> str | None: ...
    @property
    def down(self) -> int | None: ...
    @property
    def yards_to_go(self) -> int | None: ...
    @property
    def yardline_100(self) -> int | None: ...
    @property
    def offense(self) -> str | None: ...
    @property
    def defense(self) -> str | None: ...
    @property
    def play_type(self) -> str | None: ...
    @property
    def home_score(self) -> int | None: ...
    @property
    def away_score(self) -> int | None: ...
    @property
    def game_status(self) -> str | None: ...


SITUATION_FIELDS = (
    "sequence", "quarter", "clock", "down", "yards_to_go", "yardline_100", "offense", "defense",
    "play_type", "home_score", "away_score", "game_status",
)  # fmt: skip


@dataclass(slots=True)
class Stored:
    """A play's situation read from a row (anything indexed by column name, as asyncpg's records)."""

    sequence: int
    quarter: int | None
    clock: str | None
    down: int | None
    yards_to_go: int | None
    yardline_100: int | None
    offense: str | None
    defense: str | None
    play_type: str | None
    home_score: int | None
    away_score: int | None
    game_status: str | None

    @classmethod
    def of(cls, row: Any) -> Stored:
        return cls(*(row[name] for name in SITUATION_FIELDS))


@dataclass(frozen=True, slots=True)
class Values:
    """One play's values from its offense's side; an "after" value is None until it is known."""

    ep_before: float
    ep_after: float | None
    epa: float | None
    wp_before: float
    wp_after: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"ep_before": self.ep_before, "ep_after": self.ep_after, "epa": self.epa,
                "wp_before": self.wp_before, "wp_after": self.wp_after}  # fmt: skip


EMPTY_VALUES: dict[str, float | None] = dict.fromkeys(
    ("ep_before", "ep_after", "epa", "wp_before", "wp_after")
)


class ModelMissing(Exception):
    """No fitted model at the configured path (`snapline model fit` makes one)."""


MODEL_LOADED = Gauge(
    "snapline_epwp_model_loaded",
    "1 when this process holds a fitted EP/WP model (plays get values), 0 when it has none",
)
MODEL_LOADS = Counter(
    "snapline_epwp_model_loads_total", "EP/WP model artifacts read, by outcome", ["outcome"]
)


class ModelFile:
    """The model at a path, read again when the file changes (`snapline model fit` replaces it).

    A missing or unreadable file leaves the model it had (or none): the service goes on serving
    everything but the values, and `problem` says why (shown in /readyz's details).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.model: Model | None = None
        self.problem: str | None = f"no EP/WP model at {self.path}: `snapline model fit` fits one"
        self._stamp: tuple[int, int] | None = None
        MODEL_LOADED.set(0)

    def refresh(self) -> bool:
        """Read the file if it changed since the last look; True when a new model was loaded."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            model = Model.load(self.path)
        except (OSError, ValueError, KeyError, ModelMissing) as exc:
            MODEL_LOADS.labels("failed").inc()
            self.problem = f"the EP/WP model at {self.path} cannot be read: {type(exc).__name__}: {exc}"
            log.warning("epwp_model_unreadable", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
            return False
        if self.model is not None and self.model.version == model.version:
            return False
        self.model, self.problem = model, None
        MODEL_LOADS.labels("loaded").inc()
        MODEL_LOADED.set(1)
        log.info("epwp_model_loaded", path=str(self.path), version=model.version)
        return True

    def detail(self) -> str:
        """One line for /readyz: the version in use, and any problem reading a newer file."""
        if self.model is None:
            return str(self.problem)
        return f"loaded {self.model.version}" + (f"; {self.problem}" if self.problem else "")


def clock_seconds(clock: str | None) -> int | None:
    """Seconds left in the quarter from "MM:SS"; None when there is no clock."""
    if not clock:
        return None
    minutes, _, seconds = clock.partition(":")
    try:
        return min(int(minutes) * 60 + int(seconds), 900)
    except ValueError:
        return None


def half_of(quarter: int | None) -> int:
    """1 and 2 are the first half, 3 and 4 the second, overtime its own."""
    q = quarter or 1
    return 1 if q <= 2 else 2 if q <= 4 else 3


def half_seconds(quarter: int, left: int) -> int:
    return left + 900 if quarter in (1, 3) else left


def game_seconds(quarter: int, left: int) -> int:
    return (4 - quarter) * 900 + left if quarter <= 4 else left


def valued(play: Situation) -> bool:
    """Whether a play has a line of scrimmage to value: a down, a spot, both teams, a clock and
    the score after it (without the score there is no telling a touchdown drive from a punt, and
    no win probability: events from before the score joined the contract get no values)."""
    return (
        play.home_score is not None and play.away_score is not None
        and play.down is not None and 1 <= play.down <= 4
        and play.yards_to_go is not None and play.yards_to_go >= 0
        and play.yardline_100 is not None and 1 <= play.yardline_100 <= 99
        and bool(play.offense) and bool(play.defense) and play.quarter is not None
        and clock_seconds(play.clock) is not None and play.play_type not in UNVALUED_TYPES
    )  # fmt: skip


def scores_before(plays: Sequence[Situation]) -> list[tuple[int, int]]:
    """The score (home, away) before each play: the score after the play before it."""
    out = []
    current = (0, 0)
    for play in plays:
        out.append(current)
        if play.home_score is not None and play.away_score is not None:
            current = (play.home_score, play.away_score)
    return out


def _classify(ours: int, theirs: int) -> int:
    """The class of a score change from one side: what it scored less what the other side did."""
    net = ours - theirs
    if net == 0:
        return NO_SCORE
    points = abs(net)
    kind = 2 if points == 2 else 1 if points == 3 else 0  # else a touchdown (with or without its try)
    return kind if net > 0 else 6 - kind


def _points(play: Situation, before: tuple[int, int]) -> tuple[int, int]:
    """Points the play scored (home, away); nothing when it carries no score."""
    if play.home_score is None or play.away_score is None:
        return 0, 0
    return max(play.home_score - before[0], 0), max(play.away_score - before[1], 0)


def _scored(play: Situation, before: tuple[int, int], home: str) -> int:
    """The class of what the play scored from its offense's side (NO_SCORE when nothing)."""
    home_pts, away_pts = _points(play, before)
    return _classify(home_pts, away_pts) if play.offense == home else _classify(away_pts, home_pts)


def _features(plays: Sequence[Situation], index: list[int], before: list[tuple[int, int]],
              home: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """EP features (without `ep`) and WP features (with an `ep` column to fill) of `index`'s plays."""
    ep = np.empty((len(index), len(EP_FEATURES)), dtype=np.float64)
    wp = np.empty((len(index), len(WP_FEATURES)), dtype=np.float64)
    for row, i in enumerate(index):
        p = plays[i]
        q = int(p.quarter or 1)
        left = clock_seconds(p.clock) or 0
        hs, gs = half_seconds(q, left), game_seconds(q, left)
        down, ytg, yl = int(p.down or 1), int(p.yards_to_go or 0), int(p.yardline_100 or 0)
        offense_home = p.offense == home
        diff = (before[i][0] - before[i][1]) * (1 if offense_home else -1)
        ep[row] = (down, ytg, yl, hs, ytg >= yl, hs <= 120)
        wp[row] = (diff, gs, hs, yl, down, ytg, offense_home, diff / (gs / 60 + 1), 0.0)
    return ep, wp


class Model:
    """A fitted EP and WP model from its artifact (the JSON `snapline model fit` writes)."""

    def __init__(self, artifact: dict[str, Any]) -> None:
        import lightgbm  # imported with the model: services without one do not pay for it

        if artifact.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} artifact (format {artifact.get('format')!r})")
        self.artifact = artifact
        self.version: str = artifact["version"]
        self._ep = lightgbm.Booster(model_str=artifact["ep"]["model"])
        self._wp = lightgbm.Booster(model_str=artifact["wp"]["model"])

    @classmethod
    def load(cls, path: str | Path) -> Model:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise ModelMissing(f"no EP/WP model at {path}: `snapline model fit` fits one") from None
        return cls(json.loads(text))

    def expected_points(self, ep_x: np.ndarray) -> np.ndarray:
        if not len(ep_x):
            return np.zeros(0)
        probs = np.asarray(self._ep.predict(ep_x, num_threads=1), dtype=np.float64)
        points: np.ndarray = probs @ SCORE_POINTS
        return points

    def win_probability(self, wp_x: np.ndarray) -> np.ndarray:
        if not len(wp_x):
            return np.zeros(0)
        return np.asarray(self._wp.predict(wp_x, num_threads=1), dtype=np.float64)

    def game_values(self, home: str, plays: Sequence[Situation]) -> list[Values | None]:
        """Each play's values (None for a play without a scrimmage situation), `plays` in game order.

        Pure: the same plays give the same values, so a consumer recomputes a whole game after a
        correction or a delete and writes only what changed.
        """
        out: list[Values | None] = [None] * len(plays)
        index = [i for i, p in enumerate(plays) if valued(p)]
        if not index:
            return out
        before = scores_before(plays)
        ep_x, wp_x = _features(plays, index, before, home)
        ep = self.expected_points(ep_x)
        wp_x[:, -1] = ep
        wp = self.win_probability(wp_x)
        last = plays[-1]
        final = last.game_status == "final"
        ended_half = {half_of(p.quarter) for p in plays if p.game_status in ("halftime", "final")}
        later_halves = {half_of(p.quarter) for p in plays}
        for k, i in enumerate(index):
            p = plays[i]
            nxt = k + 1 if k + 1 < len(index) else None
            j = index[nxt] if nxt is not None else None
            same_side = j is not None and plays[j].offense == p.offense
            half = half_of(p.quarter)
            scored = _scored(p, before[i], home)
            ep_after: float | None
            if scored != NO_SCORE:
                ep_after = float(SCORE_POINTS[scored])
            elif j is not None and half_of(plays[j].quarter) == half:
                ep_after = float(ep[nxt] if same_side else -ep[nxt])
            elif half in ended_half or any(h > half for h in later_halves):
                ep_after = 0.0
            else:
                ep_after = None
            wp_after: float | None
            if j is not None:
                wp_after = float(wp[nxt] if same_side else 1.0 - wp[nxt])
            elif final and last.home_score is not None and last.away_score is not None:
                margin = (last.home_score - last.away_score) * (1 if p.offense == home else -1)
                wp_after = 1.0 if margin > 0 else 0.0 if margin < 0 else 0.5
            else:
                wp_after = None
            ep_b = float(ep[k])
            out[i] = Values(
                ep_before=round(ep_b, 4),
                ep_after=None if ep_after is None else round(ep_after, 4),
                epa=None if ep_after is None else round(ep_after - ep_b, 4),
                wp_before=round(float(wp[k]), 4),
                wp_after=None if wp_after is None else round(wp_after, 4),
            )
        return out


@dataclass(slots=True)
class Snap:
    """A play's situation by hand (the sanity facts, tests)."""

    sequence: int = 1
    quarter: int | None = 1
    clock: str | None = "15:00"
    down: int | None = 1
    yards_to_go: int | None = 10
    yardline_100: int | None = 75
    offense: str | None = "HOME"
    defense: str | None = "AWAY"
    play_type: str | None = "pass"
    home_score: int | None = None
    away_score: int | None = None
    game_status: str | None = "in_progress"


def situation_values(model: Model, snap: Snap, home_score: int = 0, away_score: int = 0) -> Values:
    """The before-values of one situation with the score given (home is "HOME")."""
    start = Snap(sequence=0, quarter=snap.quarter, clock=snap.clock, play_type="kickoff", down=None,
                 home_score=home_score, away_score=away_score)  # fmt: skip
    if snap.home_score is None or snap.away_score is None:
        snap = dataclasses.replace(snap, home_score=home_score, away_score=away_score)
    value = model.game_values("HOME", [start, snap])[1]
    assert value is not None
    return value


def sanity(model: Model) -> dict[str, tuple[float, bool]]:
    """The facts any sound model shows (issue 11), each with its value and whether it holds."""
    goal = situation_values(model, Snap(down=1, yards_to_go=1, yardline_100=1, clock="10:00")).ep_before
    own = situation_values(model, Snap(down=1, yards_to_go=10, yardline_100=99, clock="10:00")).ep_before
    ahead_ball = situation_values(model, Snap(quarter=4, clock="2:00"), 21, 0).wp_before
    ahead_defending = (
        1
        - situation_values(
            model, Snap(quarter=4, clock="2:00", offense="AWAY", defense="HOME"), 21, 0
        ).wp_before
    )
    return {
        "EP of 1st and goal at the 1 > 5": (goal, goal > 5),
        "EP of 1st and 10 at your own 1 < 0": (own, own < 0),
        "WP up 21 with 2:00 left, with the ball > 0.99": (ahead_ball, ahead_ball > 0.99),
        "WP up 21 with 2:00 left, without the ball > 0.99": (
            round(ahead_defending, 4),
            ahead_defending > 0.99,
        ),
    }


async def keep_fresh(models: ModelFile, every: float) -> None:
    """A service's background task: look for a new model file every `every` seconds."""
    import asyncio

    while True:
        models.refresh()
        await asyncio.sleep(every)


# -- fitting ---------------------------------------------------------------------------------


@dataclass(slots=True)
class GamePlays:
    """One game's plays in order, for the fit."""

    season: int
    home: str
    plays: Sequence[Situation]


@dataclass(slots=True)
class Rows:
    """Every valued play's features and labels; `won` is -1 where the game's winner is unknown."""

    ep_x: np.ndarray
    wp_x: np.ndarray
    next_score: np.ndarray
    won: np.ndarray
    season: np.ndarray


def training_rows(games: Iterable[GamePlays]) -> Rows:
    """Features and labels of every valued play: the next score in its half (the offense's side)
    for EP; for WP whether the offense won (finished games without a tie only)."""
    ep_x, wp_x, next_score, won, season = [], [], [], [], []
    for game in games:
        plays = game.plays
        index = [i for i, p in enumerate(plays) if valued(p)]
        if not index:
            continue
        before = scores_before(plays)
        # Walking back through the game: the next score of each play's half, from the home side.
        next_home = [NO_SCORE] * len(plays)
        upcoming, upcoming_half = NO_SCORE, -1
        for i in range(len(plays) - 1, -1, -1):
            h = half_of(plays[i].quarter)
            if h != upcoming_half:
                upcoming, upcoming_half = NO_SCORE, h
            home_pts, away_pts = _points(plays[i], before[i])
            if home_pts or away_pts:
                scored = _classify(home_pts, away_pts)
                upcoming = scored if scored != NO_SCORE else upcoming
            next_home[i] = upcoming
        ex, wx = _features(plays, index, before, game.home)
        last = plays[-1]
        winner = -1  # 1: home won, 0: away won
        decided = (
            last.home_score is not None and last.away_score is not None and last.home_score != last.away_score
        )
        if last.game_status == "final" and decided:
            winner = int(last.home_score > last.away_score)  # type: ignore[operator]
        for row, i in enumerate(index):
            offense_home = plays[i].offense == game.home
            ep_x.append(ex[row])
            wp_x.append(wx[row])
            next_score.append(next_home[i] if offense_home else 6 - next_home[i])
            won.append(-1 if winner < 0 else int(winner == offense_home))
            season.append(game.season)
    return Rows(
        np.array(ep_x).reshape(-1, len(EP_FEATURES)), np.array(wp_x).reshape(-1, len(WP_FEATURES)),
        np.array(next_score, dtype=np.int32), np.array(won, dtype=np.int32),
        np.array(season, dtype=np.int32),
    )  # fmt: skip


EP_PARAMS = {
    "objective": "multiclass", "num_class": 7, "learning_rate": 0.1, "num_leaves": 31,
    "min_data_in_leaf": 200, "feature_fraction": 1.0, "verbose": -1, "seed": 7, "deterministic": True,
}  # fmt: skip
# Monotone: more points ahead never lowers the chance to win.
WP_PARAMS = {
    "objective": "binary", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 200,
    "monotone_constraints": [1 if f in ("score_diff", "diff_per_minute") else 0 for f in WP_FEATURES],
    "verbose": -1, "seed": 7, "deterministic": True,
}  # fmt: skip


def _deciles(predicted: np.ndarray, observed: np.ndarray) -> list[dict[str, float]]:
    """Predicted against observed by decile of the prediction."""
    if not len(predicted):
        return []
    order = np.argsort(predicted, kind="stable")
    table = []
    for d, chunk in enumerate(np.array_split(order, 10), start=1):
        if not len(chunk):
            continue
        table.append({"decile": d, "plays": len(chunk), "predicted": round(float(predicted[chunk].mean()), 4),
                      "observed": round(float(observed[chunk].mean()), 4)})  # fmt: skip
    return table


def fit(games: Iterable[GamePlays], holdout: Sequence[int] = (), rounds: int = 150,
        threads: int = 0) -> dict[str, Any]:  # fmt: skip
    """Fit both models on every season but `holdout`, and measure their calibration on `holdout`.

    Returns the artifact (what `Model` loads); its version is a digest of the models' text.
    """
    import lightgbm

    started = time.monotonic()
    rows = training_rows(games)
    held = np.array(sorted(set(holdout)), dtype=np.int32)
    train = ~np.isin(rows.season, held)
    decided = rows.won >= 0
    if train.sum() < 1000 or (train & decided).sum() < 1000:
        raise ValueError(f"too few plays to fit on: {int(train.sum())} (at least 1,000 are needed)")
    params = {"num_threads": threads} if threads else {}
    ep_model = lightgbm.train(
        {**EP_PARAMS, **params},
        lightgbm.Dataset(rows.ep_x[train], rows.next_score[train], feature_name=list(EP_FEATURES)),
        num_boost_round=rounds,
    )
    # WP reads EP as a feature: each play's fitted EP, as it will be when the model serves.
    wp_x = rows.wp_x.copy()
    wp_x[:, -1] = np.asarray(ep_model.predict(rows.ep_x)) @ SCORE_POINTS
    wp_rows = train & decided
    wp_model = lightgbm.train(
        {**WP_PARAMS, **params},
        lightgbm.Dataset(wp_x[wp_rows], rows.won[wp_rows], feature_name=list(WP_FEATURES)),
        num_boost_round=rounds,
    )
    ep_text, wp_text = ep_model.model_to_string(), wp_model.model_to_string()
    digest = hashlib.sha256((ep_text + wp_text).encode()).hexdigest()[:12]
    artifact: dict[str, Any] = {
        "format": FORMAT,
        "version": f"epwp-{digest}",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "library": f"lightgbm {lightgbm.__version__}",
        "train_seasons": sorted({int(s) for s in rows.season[train]}),
        "holdout_seasons": [int(s) for s in held],
        "rows": {
            "ep_train": int(train.sum()),
            "wp_train": int(wp_rows.sum()),
            "ep_holdout": int((~train).sum()),
            "wp_holdout": int((~train & decided).sum()),
        },
        "seconds": 0.0,
        "ep": {
            "features": list(EP_FEATURES),
            "points": SCORE_POINTS.tolist(),
            "params": EP_PARAMS,
            "rounds": rounds,
            "model": ep_text,
        },
        "wp": {"features": list(WP_FEATURES), "params": WP_PARAMS, "rounds": rounds, "model": wp_text},
        "calibration": {},
    }
    test = ~train
    if test.any():
        probs = np.asarray(ep_model.predict(rows.ep_x[test]))
        artifact["calibration"]["ep"] = _deciles(probs @ SCORE_POINTS, SCORE_POINTS[rows.next_score[test]])
    if (test & decided).any():
        p = np.asarray(wp_model.predict(wp_x[test & decided]))
        y = rows.won[test & decided].astype(np.float64)
        artifact["calibration"]["wp"] = _deciles(p, y)
        artifact["calibration"]["wp_brier"] = round(float(np.mean((p - y) ** 2)), 4)
    artifact["seconds"] = round(time.monotonic() - started, 1)
    return artifact


def save(artifact: dict[str, Any], path: str | Path) -> Path:
    """Write the artifact atomically (a reader sees the old file or the new one, never half)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".epwp-")
    with os.fdopen(fd, "w") as f:
        json.dump(artifact, f)
    os.replace(tmp, target)
    return target
