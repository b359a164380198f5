"""The NFL's franchises and the codes each has played under: one code per franchise and season.

Feeds spell some teams more than one way (GameCenter's Jacksonville is `JAC` in its schedule
until 2015, `JAX` after, and both within some 2016 games) and franchises move (St. Louis Rams ->
Los Angeles in 2016, San Diego Chargers -> Los Angeles in 2017, Oakland Raiders -> Las Vegas in
2020). Ingest rewrites every team code of an event to its franchise's code for the event's
season (`canonical_event`), as nflverse does: a relocated franchise keeps the code it played
under in that season (`STL` in 2015, `LA` in 2016), and a second spelling of the same code is
folded into it (`JAC` -> `JAX` in every season). `expand` turns a `team=` filter into every code
of the franchises it names, so `team=STL` finds the Rams' plays of every season. Codes this table
does not know pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from shared.events import PlayDeleted, PlayEvent


@dataclass(frozen=True)
class Era:
    """A code and name a franchise played under, from season `first` to `last` (None: open)."""

    code: str
    name: str
    first: int | None = None
    last: int | None = None

    def covers(self, season: int) -> bool:
        return (self.first is None or season >= self.first) and (self.last is None or season <= self.last)


@dataclass(frozen=True)
class Franchise:
    """`id` is the franchise's code today; `aliases` are other spellings feeds use for it."""

    id: str
    eras: tuple[Era, ...]
    aliases: tuple[str, ...] = ()

    def era(self, season: int) -> Era:
        for era in self.eras:
            if era.covers(season):
                return era
        return self.eras[-1]  # the eras run from no start to no end: not reached

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code of the franchise: its eras' codes, then the aliases."""
        return tuple(dict.fromkeys([e.code for e in self.eras] + list(self.aliases)))


def _one(code: str, name: str, *aliases: str) -> Franchise:
    return Franchise(code, (Era(code, name),), aliases)


FRANCHISES: tuple[Franchise, ...] = (
    _one("ARI", "Arizona Cardinals"),
    _one("ATL", "Atlanta Falcons"),
    _one("BAL", "Baltimore Ravens"),
    _one("BUF", "Buffalo Bills"),
    _one("CAR", "Carolina Panthers"),
    _one("CHI", "Chicago Bears"),
    _one("CIN", "Cincinnati Bengals"),
    _one("CLE", "Cleveland Browns"),
    _one("DAL", "Dallas Cowboys"),
    _one("DEN", "Denver Broncos"),
    _one("DET", "Detroit Lions"),
    _one("GB", "Green Bay Packers", "GNB"),
    _one("HOU", "Houston Texans"),
    _one("IND", "Indianapolis Colts"),
    _one("JAX", "Jacksonville Jaguars", "JAC"),
    _one("KC", "Kansas City Chiefs", "KAN"),
    Franchise(
        "LA", (Era("STL", "St. Louis Rams", last=2015), Era("LA", "Los Angeles Rams", first=2016)), ("LAR",)
    ),
    Franchise(
        "LAC",
        (Era("SD", "San Diego Chargers", last=2016), Era("LAC", "Los Angeles Chargers", first=2017)),
        ("SDG",),
    ),
    Franchise(
        "LV", (Era("OAK", "Oakland Raiders", last=2019), Era("LV", "Las Vegas Raiders", first=2020)), ("LVR",)
    ),
    _one("MIA", "Miami Dolphins"),
    _one("MIN", "Minnesota Vikings"),
    _one("NE", "New England Patriots", "NWE"),
    _one("NO", "New Orleans Saints", "NOR"),
    _one("NYG", "New York Giants"),
    _one("NYJ", "New York Jets"),
    _one("PHI", "Philadelphia Eagles"),
    _one("PIT", "Pittsburgh Steelers"),
    _one("SEA", "Seattle Seahawks"),
    _one("SF", "San Francisco 49ers", "SFO"),
    _one("TB", "Tampa Bay Buccaneers", "TAM"),
    _one("TEN", "Tennessee Titans"),
    Franchise(
        "WAS",
        (
            Era("WAS", "Washington Redskins", last=2019),
            Era("WAS", "Washington Football Team", 2020, 2021),
            Era("WAS", "Washington Commanders", first=2022),
        ),
        ("WSH",),
    ),
)
BY_CODE: dict[str, Franchise] = {code: f for f in FRANCHISES for code in f.codes}
BY_ID: dict[str, Franchise] = {f.id: f for f in FRANCHISES}
_RENAMES: dict[int, dict[str, str]] = {}


def renames(season: int) -> dict[str, str]:
    """The codes that are rewritten in `season`, to what (memoised per season)."""
    table = _RENAMES.get(season)
    if table is None:
        table = {code: f.era(season).code for code, f in BY_CODE.items() if f.era(season).code != code}
        if 1900 <= season <= 2200:
            _RENAMES[season] = table
    return table


def franchise(code: str | None) -> Franchise | None:
    return None if code is None else BY_CODE.get(code)


def canonical(code: str, season: int) -> str:
    """The code of `code`'s franchise in `season`; `code` itself when no franchise has it."""
    return renames(season).get(code, code)


def same_franchise(a: str | None, b: str | None) -> bool:
    """Whether two codes name one franchise (equal codes always do)."""
    if a is None or b is None:
        return False
    fa, fb = BY_CODE.get(a), BY_CODE.get(b)
    return a == b or (fa is not None and fa is fb)


def expand(codes: list[str]) -> list[str]:
    """A `team=` filter's codes, each replaced by every code of its franchise (unknown ones kept)."""
    out: dict[str, None] = {}
    for code in codes:
        f = BY_CODE.get(code)
        out.update(dict.fromkeys(f.codes if f is not None else (code,)))
    return list(out)


def canonical_event(event: PlayEvent) -> PlayEvent:
    """`event` with every team code the franchise's code of the event's season; the same object
    when nothing changes (nearly always: only renamed and respelled codes are rewritten)."""
    table = renames(event.game.season)
    game = event.game
    if game.home in table or game.away in table:
        game = msgspec.structs.replace(
            game, home=table.get(game.home, game.home), away=table.get(game.away, game.away)
        )
    if isinstance(event, PlayDeleted):
        return event if game is event.game else msgspec.structs.replace(event, game=game)
    play = event.play
    changes: dict[str, object] = {}
    for name in ("offense", "defense"):
        code = getattr(play, name)
        if code in table:
            changes[name] = table[code]
    if any(p.team in table for p in play.participants):
        changes["participants"] = [
            msgspec.structs.replace(p, team=table[p.team]) if p.team in table else p
            for p in play.participants
        ]
    if any(c.team in table for c in play.stats):
        changes["stats"] = [
            msgspec.structs.replace(c, team=table[c.team]) if c.team in table else c for c in play.stats
        ]
    if changes:
        play = msgspec.structs.replace(play, **changes)
    if game is event.game and play is event.play:
        return event
    return msgspec.structs.replace(event, game=game, play=play)
