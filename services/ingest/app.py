"""Builds the ingest application: the only way it is built, for main() and tests alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.ingest.importer import Importer
from services.ingest.jobs import JobStore
from services.ingest.keys import IMPORTER, JOBS, POSTGRES, PRODUCER, PUBLISHER, REDIS
from services.ingest.options import ImportOptions
from services.ingest.publisher import Publisher
from services.ingest.routes import setup_routes
from shared.cache import redis_dependency
from shared.config import Settings
from shared.db import postgres_dependency
from shared.http import add_background, add_dependency, base_app
from shared.kafka import producer_dependency


def create_app(settings: Settings, options: ImportOptions | None = None) -> web.Application:
    app = base_app(settings)
    add_dependency(app, POSTGRES, postgres_dependency(settings, migrations="services.ingest", max_size=5))
    add_dependency(app, PRODUCER, producer_dependency(settings))
    add_dependency(app, REDIS, redis_dependency(settings))
    app[PUBLISHER] = Publisher(settings, app[PRODUCER], app[REDIS])
    app[JOBS] = JobStore(app[POSTGRES])
    app[IMPORTER] = Importer(app[JOBS], app[PUBLISHER], options or ImportOptions.from_env())
    app.cleanup_ctx.append(_worker_processes)
    # Registered after the dependencies, so it stops first and a job in flight can still
    # finish its current file and hand the job back.
    add_background(app, "import-jobs", lambda: _run_jobs(app))
    add_background(app, "dedupe-marks-bound", lambda: _bound_marks(app))
    setup_routes(app)
    return app


async def _run_jobs(app: web.Application) -> None:
    await app[POSTGRES].wait()
    await app[IMPORTER].run()


async def _bound_marks(app: web.Application) -> None:
    await app[PUBLISHER].bound_old_marks()


async def _worker_processes(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[IMPORTER].close()
