"""Projects play events into the `plays` read model, newest revision wins.

A batch is reduced to the highest revision per play, staged with COPY, and merged with one
INSERT .. ON CONFLICT whose guard (`plays.revision < EXCLUDED.revision`) makes redelivery,
replays and out-of-order corrections harmless. A delete is a tombstone row with its revision,
so an older revision arriving later cannot bring the play back.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.query.archived import MARKS
from services.query.cache import batch_tags, bump
from services.query.players import player_rows, write_players
from services.query.values import VALUER
from shared.db import Pools, SeasonPartitions, share_swap_lock, swap_lock
from shared.deps import Dependency
from shared.epwp import ModelFile
from shared.events import (
    GameView,
    PlayEvent,
    SituationView,
    encoder,
    latest_revisions,
    play_key,
    view_decoder,
)
from shared.stats import PASSER_SACKED_IDS, PRESSURE_IDS, SACK_IDS

COLUMNS = (
    "play_id", "season", "game_id", "feed_play_id", "revision", "deleted", "season_type", "week",
    "home", "away", "sequence", "drive", "quarter", "clock", "down", "yards_to_go", "yardline_100",
    "offense", "defense", "play_type", "yards_gained", "touchdown", "turnover", "penalty", "sack",
    "pressure", "description", "formation", "personnel", "participants", "stats", "player_ids",
    "event_id", "occurred_at", "home_score", "away_score", "game_status",
)  # fmt: skip
_KEYS = ("play_id", "season")
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in _KEYS)
MERGE_SQL = (
    f"INSERT INTO plays ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM plays_stage "
    f"ON CONFLICT (play_id, season) DO UPDATE SET {_UPDATE}, projected_at = now() "
    "WHERE plays.revision < EXCLUDED.revision"
)
GAMES_SQL = (
    "INSERT INTO games (game_id, season, season_type, week, home, away) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[]) "
    "ON CONFLICT (game_id) DO UPDATE SET season = EXCLUDED.season, season_type = EXCLUDED.season_type, "
    "week = EXCLUDED.week, home = EXCLUDED.home, away = EXCLUDED.away, updated_at = now()"
)
_json = msgspec.json.Encoder()


# The projector's own view of an event: what a `plays` row needs. Participants and credits stay
# the JSON the record carries (ingest wrote every field), stored as they are instead of being
# built into objects and encoded again; only their ids are read, for player_ids and flags.
class _Play(SituationView, kw_only=True, gc=False):
    formation: dict[str, Any] | None = None
    personnel: dict[str, Any] | None = None
    participants: msgspec.Raw = msgspec.Raw(b"[]")
    stats: msgspec.Raw = msgspec.Raw(b"[]")


class Recorded(msgspec.Struct, kw_only=True, gc=False, tag="play_recorded", tag_field="type"):
    event_id: str
    occurred_at: datetime
    game: GameView
    play: _Play
    revision: int = 1


class Corrected(Recorded, tag="play_corrected"):
    pass


class Deleted(msgspec.Struct, kw_only=True, gc=False, tag="play_deleted", tag_field="type"):
    event_id: str
    occurred_at: datetime
    game: GameView
    play_id: str
    revision: int


View = Recorded | Deleted  # Corrected is a Recorded
views_of = view_decoder(Recorded, Corrected, Deleted)


class _PlayerRef(msgspec.Struct, gc=False):
    player_id: str | None = None


class _CreditRef(msgspec.Struct, gc=False):
    stat_id: int
    player_id: str | None = None


_player_refs = msgspec.json.Decoder(list[_PlayerRef])
_credit_refs = msgspec.json.Decoder(list[_CreditRef])


def view(event: PlayEvent) -> View:
    """The projector's view of a full event (what a consumer of its record would decode)."""
    [v] = views_of([encoder.encode(event)])
    return v  # type: ignore[no-any-return]


def row(event: View) -> tuple[Any, ...]:
    """The `plays` row of an event, in COLUMNS order."""
    g = event.game
    head = (play_key(event), g.season, g.game_id)
    if isinstance(event, Deleted):
        return (*head, event.play_id, event.revision, True, g.season_type, g.week, g.home, g.away,
                0, None, None, None, None, None, None, None, None, None, None, False, False, False,
                False, False, None, None, None, "[]", "[]", [], event.event_id, event.occurred_at,
                None, None, None)  # fmt: skip
    p = event.play
    credits = _credit_refs.decode(p.stats)
    stat_ids = {c.stat_id for c in credits}
    player_ids = sorted(
        {r.player_id for r in _player_refs.decode(p.participants) if r.player_id}
        | {c.player_id for c in credits if c.player_id}
    )
    return (
        *head, p.play_id, event.revision, False, g.season_type, g.week, g.home, g.away,
        p.sequence, p.drive, p.quarter, p.clock, p.down, p.yards_to_go, p.yardline_100,
        p.offense, p.defense, p.play_type, p.yards_gained, p.touchdown, p.turnover, p.penalty,
        not stat_ids.isdisjoint(_SACKED), not stat_ids.isdisjoint(PRESSURE_IDS), p.description,
        None if p.formation is None else _json.encode(p.formation).decode(),
        None if p.personnel is None else _json.encode(p.personnel).decode(),
        bytes(p.participants).decode(), bytes(p.stats).decode(), player_ids,
        event.event_id, event.occurred_at, p.home_score, p.away_score, p.game_status,
    )  # fmt: skip


_SACKED = SACK_IDS | PASSER_SACKED_IDS
SWAP_LOCK = swap_lock("services.query")  # `snapline rebuild query` swaps plays and games under it


class Projector:
    """Applies batches of Kafka records to PostgreSQL in one transaction each.

    Each transaction holds SWAP_LOCK shared, so a rebuild's swap falls between two batches;
    a rebuild's own projector, writing its shadow tables, passes `swap_lock=None`.
    """

    def __init__(
        self, db: Dependency[Pools], swap_lock: int | None = SWAP_LOCK, models: ModelFile | None = None
    ) -> None:
        self._db = db
        self._models = models  # None: plays are stored without EP/WP (a rebuild's shadow; see values.py)
        self._swap_lock = swap_lock
        self._partitions = SeasonPartitions("plays", swap_lock, archived=MARKS)
        self.plays_written = 0

    def __repr__(self) -> str:
        return f"Projector(plays_written={self.plays_written}, {self._partitions!r})"

    async def apply_records(self, values: Sequence[bytes], defer_values: Set[str] = frozenset()) -> int:
        """Decode and apply raw event records; a record that does not decode raises."""
        return await self.apply_views(views_of(values), defer_values)

    async def apply(self, events: Sequence[PlayEvent]) -> int:
        """Apply full events (as their records would be applied); returns how many rows changed."""
        return await self.apply_views([view(e) for e in events])

    async def apply_views(self, decoded: Sequence[View], defer_values: Set[str] = frozenset()) -> int:
        """Apply decoded views; returns how many plays rows changed.

        The games written get their EP/WP values in the same transaction, but for `defer_values`
        (history: bulk imports), which are marked unvalued for the background pass.
        """
        events = latest_revisions(decoded)
        if not events:
            return 0
        games = {e.game.game_id: e.game for e in events}
        async with self._db.get().primary.acquire() as conn:
            await self._partitions.ensure(conn, {g.season for g in games.values()})
            async with conn.transaction():
                await share_swap_lock(conn, self._swap_lock)
                changed = await self._write(conn, events)
                game_rows = [
                    (g.game_id, g.season, g.season_type, g.week, g.home, g.away) for g in games.values()
                ]
                await conn.execute(GAMES_SQL, *(list(col) for col in zip(*game_rows, strict=True)))
                if self._models is not None:  # after the games rows exist: revalue marks them
                    await VALUER.revalue(
                        conn, self._models, [g for g in games if g not in defer_values], "batch"
                    )
                    await VALUER.defer(conn, [g for g in games if g in defer_values])
                await write_players(conn, player_rows(
                    (e.game.season, bytes(e.play.participants)) for e in events if isinstance(e, Recorded)
                ))  # fmt: skip
                await bump(conn, batch_tags(games.values()))  # last: its rows are locked until commit
        self.plays_written += changed
        return changed

    async def _write(self, conn: asyncpg.Connection, events: list[View]) -> int:
        """COPY the batch straight into `plays`; if any play is already there, merge instead.

        Almost every batch holds only new plays, and a direct COPY writes them once. A
        correction, a delete or a redelivery hits the primary key, and the savepoint lets the
        batch go through the revision-guarded merge.
        """
        rows = [row(e) for e in events]
        try:
            async with conn.transaction():  # a savepoint inside the batch's transaction
                await conn.copy_records_to_table("plays", records=rows, columns=COLUMNS)
            return len(rows)
        except asyncpg.UniqueViolationError:
            pass
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS plays_stage (LIKE plays INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table("plays_stage", records=rows, columns=COLUMNS)
        return int((await conn.execute(MERGE_SQL)).rsplit(" ", 1)[-1])
