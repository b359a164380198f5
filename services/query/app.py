"""Builds the query application: the read API and the projector consuming the plays topic."""

from __future__ import annotations

from aiohttp import web

from services.query.cache import open_cache
from services.query.consumer import batch_handler
from services.query.keys import CACHE, CONSUMER, DEAD_LETTER, POSTGRES
from services.query.projection import Projector
from services.query.routes import setup_routes
from shared.config import Settings
from shared.db import postgres_dependency
from shared.http import add_dependency, base_app
from shared.kafka import ConsumerLoop, add_consumer, producer_dependency


def create_app(settings: Settings) -> web.Application:
    app = base_app(settings)
    add_dependency(app, POSTGRES, postgres_dependency(settings, migrations="services.query"))
    add_dependency(app, DEAD_LETTER, producer_dependency(settings))
    app[CACHE] = open_cache(settings)
    projector = Projector(app[POSTGRES])
    # Projectors wait up to 50 ms for fuller fetches: bigger transactions, fewer commits.
    loop = ConsumerLoop.plays(settings, batch_handler(projector), app[DEAD_LETTER], fetch_wait_ms=50)
    add_consumer(app, CONSUMER, loop, settings)
    setup_routes(app)
    return app
