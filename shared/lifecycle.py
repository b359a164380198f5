"""Season lifecycle: `snapline archive` and `snapline restore` across the services owning per-season rows.

A season is archived owner by owner (query, then analytics), each on its own database with its
own tables (shared/archive.py), in this order: every owner's files are written and verified, then
the manifest, then each owner's drop transaction. A run that stops between two drops leaves
the first owner archived and the second active: a second `snapline archive SEASON` archives what
is left, keeping the first's files. Restores read where the mark says the season went (the
ARCHIVE_URL of that time), so changing ARCHIVE_URL later does not lose an archive.

The policy keeps the newest ARCHIVE_KEEP_SEASONS seasons of the data active (3: the current season
and the two before it, the design overview's rule); the current season is the newest one the data
holds, archived or not, not the calendar's, so an installation of history alone keeps its last three.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from shared import archive
from shared.archive import ArchiveError, SeasonOwner
from shared.coldstore import ColdStore, ColdStoreError, Manifest, TableFile
from shared.config import Settings
from shared.logging import get_logger
from shared.shadow import combined

log = get_logger(__name__)


@dataclass(frozen=True)
class Target:
    """An owner and the database its tables are in (its service's DATABASE_URL)."""

    owner: SeasonOwner
    database_url: str


@dataclass
class Outcome:
    """What an archive or restore did."""

    season: int
    where: str
    tables: dict[str, TableFile]
    owners: list[str] = field(default_factory=list)  # the owners this run moved
    seconds: float = 0.0

    @property
    def checksum(self) -> str:
        return combined({t: (f.rows, f.sha256) for t, f in self.tables.items()})


@dataclass
class Seasons:
    """The seasons of the data: active or archived per owner, and what the policy archives."""

    active: dict[str, set[int]]
    archived: dict[str, dict[int, str]]  # owner -> season -> location
    keep: int

    @property
    def known(self) -> set[int]:
        out: set[int] = set()
        for owner in self.active:
            out |= self.active[owner] | set(self.archived[owner])
        return out

    def kept(self) -> list[int]:
        """The seasons the policy keeps active: the newest `keep` of the data."""
        if not self.known:
            return []
        current = max(self.known)
        return list(range(current - self.keep + 1, current + 1))

    def fully_archived(self, season: int) -> bool:
        return all(season in marks for marks in self.archived.values())

    def to_archive(self) -> list[int]:
        """Seasons older than the kept ones that some owner still holds, oldest first."""
        kept = self.kept()
        return sorted(s for s in self.known if kept and s < kept[0] and not self.fully_archived(s))


class _Connections:
    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = targets
        self.conns: dict[str, asyncpg.Connection] = {}

    async def __aenter__(self) -> _Connections:
        for t in self.targets:
            self.conns[t.owner.name] = await asyncpg.connect(t.database_url, command_timeout=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self.conns.values():
            await conn.close()


async def _seasons(c: _Connections, keep: int) -> Seasons:
    if keep < 1:
        raise ArchiveError(f"ARCHIVE_KEEP_SEASONS must be at least 1, got {keep}")
    active, archived = {}, {}
    for t in c.targets:
        try:
            active[t.owner.name], archived[t.owner.name] = await archive.seasons(
                c.conns[t.owner.name], t.owner
            )
        except asyncpg.UndefinedTableError as exc:
            raise ArchiveError(f"{exc}: the {t.owner.name} service of this version has not migrated this "
                               "database yet (it does at start-up)") from None  # fmt: skip
    return Seasons(active, archived, keep)


def _span(seasons: set[int]) -> str:
    return f"{min(seasons)}-{max(seasons)}" if seasons else "none"


async def survey(settings: Settings, targets: Sequence[Target]) -> Seasons:
    """The seasons as the owners' tables hold them now."""
    async with _Connections(targets) as c:
        return await _seasons(c, settings.archive_keep_seasons)


async def archive_season(
    settings: Settings, targets: Sequence[Target], season: int, force: bool = False
) -> Outcome:
    """Export, verify and drop `season` from every owner that still holds it."""
    started = time.monotonic()
    if settings.archive_batch_rows < 1:
        raise ArchiveError(f"ARCHIVE_BATCH_ROWS must be at least 1, got {settings.archive_batch_rows}")
    async with _Connections(targets) as c:
        state = await _seasons(c, settings.archive_keep_seasons)
        if season not in state.known:
            raise ArchiveError(f"no season {season} in the data (its seasons: {_span(state.known)})")
        if state.fully_archived(season):
            where = next(iter(state.archived.values()))[season]
            raise ArchiveError(f"season {season} is already archived (in {where}); "
                               f"`snapline restore {season}` brings it back")  # fmt: skip
        kept = state.kept()
        if season in kept and not force:
            raise ArchiveError(
                f"season {season} is kept active by the policy (ARCHIVE_KEEP_SEASONS="
                f"{settings.archive_keep_seasons}: seasons {kept[0]}-{kept[-1]}); --force archives it anyway"
            )
        store = _store(settings.archive_url, settings)
        moving = [t for t in targets if season not in state.archived[t.owner.name]]
        tables = _kept_files(store, season, [t for t in targets if t not in moving])
        for t in moving:  # every file written and read back before anything is dropped
            conn = c.conns[t.owner.name]
            files = await archive.export(conn, t.owner, season, store, settings.archive_batch_rows)
            await archive.verify(conn, t.owner, season, store, files, settings.archive_batch_rows)
            tables.update(files)
        schemas = {}
        for t in targets:
            schemas[t.owner.package] = await c.conns[t.owner.name].fetchval(
                "SELECT digest FROM schema_migrations WHERE package = $1", t.owner.package
            )
        outcome = Outcome(season, store.where(season), tables, [t.owner.name for t in moving])
        store.write_manifest(Manifest(season=season, archived_at=datetime.now(UTC), location=store.url,
                                      schemas=schemas, tables=tables, checksum=outcome.checksum))  # fmt: skip
        for t in moving:
            files = {name: f for name, f in tables.items() if f.owner == t.owner.name}
            await archive.drop(c.conns[t.owner.name], t.owner, season, files, store.url)
    outcome.seconds = time.monotonic() - started
    log.info("archive_done", season=season, where=outcome.where, owners=outcome.owners,
             rows=sum(f.rows for f in tables.values()), bytes=sum(f.bytes for f in tables.values()),
             checksum=outcome.checksum, seconds=round(outcome.seconds, 2))  # fmt: skip
    return outcome


def _store(url: str, settings: Settings) -> ColdStore:
    try:
        return ColdStore.open(url, settings)
    except ColdStoreError as exc:
        raise ArchiveError(str(exc)) from None


def _kept_files(store: ColdStore, season: int, done: Sequence[Target]) -> dict[str, TableFile]:
    """The files of owners that an earlier, interrupted run archived already."""
    if not done:
        return {}
    manifest = store.read_manifest(season)
    names = {t.owner.name for t in done}
    kept = {n: f for n, f in (manifest.tables.items() if manifest else ()) if f.owner in names}
    if {f.owner for f in kept.values()} != names:
        raise ArchiveError(f"season {season} is archived in part ({', '.join(sorted(names))}) but "
                           f"{store.where(season)}manifest.json lacks it: restore it first")  # fmt: skip
    return kept


async def restore_season(settings: Settings, targets: Sequence[Target], season: int) -> Outcome:
    """Load `season` back into every owner that archived it, checksums equal to the manifest's."""
    started = time.monotonic()
    async with _Connections(targets) as c:
        state = await _seasons(c, settings.archive_keep_seasons)
        moving = [t for t in targets if season in state.archived[t.owner.name]]
        if not moving:
            if season in state.known:
                raise ArchiveError(f"season {season} is not archived: it is active")
            raise ArchiveError(
                f"no season {season} in the data or the archive (its seasons: {_span(state.known)})"
            )
        tables: dict[str, TableFile] = {}
        where = ""
        for t in moving:
            store = _store(state.archived[t.owner.name][season], settings)
            where = store.where(season)
            try:
                manifest = store.read_manifest(season)
            except ColdStoreError as exc:
                raise ArchiveError(str(exc)) from None
            if manifest is None:
                raise ArchiveError(
                    f"season {season} is marked archived in {where}, but it holds no manifest.json"
                )
            files = {n: f for n, f in manifest.tables.items() if f.owner == t.owner.name}
            await archive.restore(
                c.conns[t.owner.name], t.owner, season, store, files, settings.archive_batch_rows
            )
            tables.update(files)
    outcome = Outcome(season, where, tables, [t.owner.name for t in moving], time.monotonic() - started)
    log.info("restore_done", season=season, where=where, owners=outcome.owners,
             rows=sum(f.rows for f in tables.values()), checksum=outcome.checksum,
             seconds=round(outcome.seconds, 2))  # fmt: skip
    return outcome
