"""The shapes of the game and player answers, as /openapi.json documents them (the gateway reads
these structs to describe the routes; tests check the answers against them)."""

from __future__ import annotations

import msgspec


class GameSummary(msgspec.Struct):
    game_id: str
    season: int
    season_type: str
    week: int
    home: str
    away: str


class GameList(msgspec.Struct):
    items: list[GameSummary]
    next_cursor: str | None  # null on the last page


class QuarterScore(msgspec.Struct):
    quarter: int  # 5 is overtime
    home: int  # points scored in the quarter
    away: int


class Score(msgspec.Struct):
    home: int  # the latest score: the final one once the game is over
    away: int
    by_quarter: list[QuarterScore]  # the quarters played so far


class Drive(msgspec.Struct):
    drive: int
    first_sequence: int
    plays: int
    yards: int | None
    touchdown: bool | None
    offense: str | None


class GameDetail(GameSummary):
    teams: list[str]  # [home, away]
    score: Score | None  # null when the game's events carry no score
    status: str | None  # in_progress | halftime | final, after the latest play
    drives: list[Drive]


class PlayerSummary(msgspec.Struct):
    player_id: str
    name: str | None
    position: str | None
    teams: list[str]  # every team code the player played under
    first_season: int
    last_season: int


class PlayerList(msgspec.Struct):
    items: list[PlayerSummary]
    next_cursor: str | None


class PlayerSeason(msgspec.Struct):
    season: int
    team: str
    position: str | None


class PlayerDetail(PlayerSummary):
    seasons: list[PlayerSeason]  # (season, team) pairs in season order


class TeamCode(msgspec.Struct):
    code: str
    name: str | None
    first_season: int  # the seasons of the games held here that name this code
    last_season: int


class Team(msgspec.Struct):
    team: str  # the franchise's code today (shared.teams); `team=` filters take any of `codes`
    name: str | None  # its name in its latest season here; null for a code no franchise has
    first_season: int
    last_season: int
    codes: list[TeamCode]  # the codes it played under, oldest first


class TeamList(msgspec.Struct):
    items: list[Team]
