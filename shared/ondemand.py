"""Restore on demand (ARCHIVE_RESTORE_ON_DEMAND, off by default) for a service that owns per-season rows.

Off, a read of an archived season answers 410 season_archived. On, the first such read starts, in
the background, the restore of the reading service's own part of the season (shared/archive.py,
on its own tables only: query's read brings back query's tables, analytics' read analytics'), and
reads answer 503 season_restoring + Retry-After until it is back. Instances racing to restore the
same season queue on the service's swap lock; the first restores, the others find nothing left to do.
A restore that failed is not tried again for FAILED_BACKOFF seconds (reads answer 410 meanwhile,
naming the failure). pyarrow is imported only when a restore runs.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import Counter

from shared.config import Settings
from shared.deps import Dependency
from shared.errors import ApiError, season_archived
from shared.logging import get_logger
from shared.tasks import stop_task

if TYPE_CHECKING:
    from shared.archive import SeasonOwner

log = get_logger(__name__)
RESTORES = Counter(
    "snapline_archive_on_demand_total",
    "On-demand restores by how they ended: restored, elsewhere (another instance did it), failed",
    ["service", "outcome"],
)
RETRY_AFTER_SECONDS = 10
FAILED_BACKOFF = 60.0


class Restorer:
    """Answers reads of archived seasons for one service: 410, or a background restore and 503."""

    def __init__(self, settings: Settings, db: Dependency[Any], owner_module: str) -> None:
        self.enabled = settings.archive_restore_on_demand
        self._settings = settings
        self._db = db
        self._owner_module = owner_module  # imported when a restore runs: it brings pyarrow
        self._running: dict[int, asyncio.Task[None]] = {}
        self._failed: dict[int, tuple[float, str]] = {}

    def __repr__(self) -> str:
        return f"Restorer(enabled={self.enabled}, running={sorted(self._running)})"

    def refusal(self, season: int) -> ApiError:
        """The answer to a read of archived `season` (starting its restore when on demand)."""
        if not self.enabled:
            return season_archived(season)
        failed = self._failed.get(season)
        if failed is not None and time.monotonic() - failed[0] < FAILED_BACKOFF:
            refused = season_archived(season)
            refused.details.append({"restore_on_demand_failed": failed[1]})
            return refused
        if season not in self._running:
            self._running[season] = asyncio.create_task(self._restore(season), name=f"restore-{season}")
        return ApiError(
            503, "season_restoring",
            f"season {season} is being restored from cold storage; ask again in a few seconds",
            [{"field": "season", "season": season}], headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )  # fmt: skip

    async def _restore(self, season: int) -> None:
        from shared import archive
        from shared.coldstore import ColdStore

        owner: SeasonOwner = importlib.import_module(self._owner_module).OWNER
        outcome = "restored"
        try:
            async with self._db.get().primary.acquire() as conn:
                location = await conn.fetchval(
                    f"SELECT location FROM {owner.marks} WHERE season = $1", season
                )
                if location is None:
                    outcome = "elsewhere"
                    return
                store = ColdStore.open(location, self._settings)
                manifest = store.read_manifest(season)
                if manifest is None:
                    raise archive.ArchiveError(f"{store.where(season)} holds no manifest.json")
                files = {n: f for n, f in manifest.tables.items() if f.owner == owner.name}
                await archive.restore(conn, owner, season, store, files, self._settings.archive_batch_rows)
            self._failed.pop(season, None)
        except archive.ArchiveError as exc:
            if "is not archived" in str(exc):  # another instance restored it first
                outcome = "elsewhere"
                return
            outcome = self._fail(season, exc)
        except Exception as exc:  # storage or database: said in the answers for a while, then tried again
            outcome = self._fail(season, exc)
        finally:
            RESTORES.labels(self._settings.service, outcome).inc()
            self._running.pop(season, None)
            log.info("restore_on_demand", season=season, outcome=outcome)

    def _fail(self, season: int, exc: BaseException) -> str:
        message = f"{type(exc).__name__}: {exc}"
        self._failed[season] = (time.monotonic(), message)
        log.error("restore_on_demand_failed", season=season, error=message, retry_in=FAILED_BACKOFF)
        return "failed"

    async def close(self) -> None:
        """Stop restores in flight (their transactions roll back: the season stays archived)."""
        for season, task in list(self._running.items()):
            await stop_task(task, f"restore-{season}")


def add_restorer(
    app: web.Application,
    key: web.AppKey[Restorer],
    settings: Settings,
    db: Dependency[Any],
    owner_module: str,
) -> None:
    """`app[key]`: the service's Restorer (`owner_module` declares its SeasonOwner as OWNER); restores
    in flight are stopped at shutdown."""
    app[key] = Restorer(settings, db, owner_module)

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        yield
        await app[key].close()

    app.cleanup_ctx.append(ctx)
