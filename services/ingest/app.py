"""Builds the ingest application: the only way it is built, for main() and tests alike."""

from __future__ import annotations

from aiohttp import web

from services.ingest.keys import PRODUCER, PUBLISHER, REDIS
from services.ingest.publisher import Publisher
from services.ingest.routes import setup_routes
from shared.cache import redis_dependency
from shared.config import Settings
from shared.http import add_dependency, base_app
from shared.kafka import producer_dependency


def create_app(settings: Settings) -> web.Application:
    app = base_app(settings)
    add_dependency(app, PRODUCER, producer_dependency(settings))
    add_dependency(app, REDIS, redis_dependency(settings))
    app[PUBLISHER] = Publisher(settings, app[PRODUCER], app[REDIS])
    setup_routes(app)
    return app
