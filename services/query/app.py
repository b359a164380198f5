"""Builds the query application: the read API and the projector consuming the plays topic."""

from __future__ import annotations

import functools

from aiohttp import web

from services.query.cache import open_cache
from services.query.consumer import batch_handler
from services.query.keys import CACHE, CONSUMER, DEAD_LETTER, POSTGRES, REDIS, RESTORER
from services.query.projection import SWAP_LOCK, Projector
from services.query.routes import setup_routes
from services.query.values import keep_valued
from shared.cache import redis_dependency
from shared.config import Settings
from shared.db import postgres_dependency
from shared.epwp import ModelFile
from shared.http import READY_DETAILS, add_background, add_dependency, base_app
from shared.kafka import ConsumerLoop, add_consumer, producer_dependency
from shared.ondemand import add_restorer


def create_app(settings: Settings) -> web.Application:
    app = base_app(settings)
    add_dependency(app, POSTGRES, postgres_dependency(settings, migrations="services.query"))
    add_dependency(app, DEAD_LETTER, producer_dependency(settings))
    # Redis holds only the answers' shared tier: query stays ready (and correct) without it.
    add_dependency(app, REDIS, redis_dependency(settings), required=False)
    app[CACHE] = open_cache(settings, redis=app[REDIS])
    models = ModelFile(settings.model_path)
    models.refresh()
    app[READY_DETAILS]["epwp_model"] = models.detail
    projector = Projector(app[POSTGRES], models=models)
    # Projectors wait up to 50 ms for fuller fetches: bigger transactions, fewer commits.
    loop = ConsumerLoop.plays(settings, batch_handler(projector), app[DEAD_LETTER], fetch_wait_ms=50)
    add_consumer(app, CONSUMER, loop, settings)
    add_background(app, "epwp_values", functools.partial(
        keep_valued, app[POSTGRES], models, SWAP_LOCK, settings.model_reload_seconds))  # fmt: skip
    add_restorer(app, RESTORER, settings, app[POSTGRES], "services.query.archive")
    setup_routes(app)
    return app
