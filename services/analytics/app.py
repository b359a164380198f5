"""Builds the analytics application: the aggregate store fed by Kafka and its read API."""

from __future__ import annotations

import functools

from aiohttp import web

from services.analytics.consumer import batch_handler
from services.analytics.index import DefenderIndex
from services.analytics.keys import ANSWERS, CONSUMER, DEAD_LETTER, INDEX, POSTGRES, REDIS, RESTORER
from services.analytics.routes import setup_routes
from services.analytics.store import (
    GENERATIONS,
    SWAP_LOCK,
    VALUER,
    AggregateStore,
    after_chunk,
    check_play_copy,
)
from shared.answers import AnswerCache
from shared.cache import redis_dependency
from shared.config import Settings
from shared.db import postgres_dependency
from shared.epwp import ModelFile
from shared.http import READY_DETAILS, add_background, add_dependency, base_app
from shared.kafka import ConsumerLoop, add_consumer, producer_dependency
from shared.ondemand import add_restorer


def create_app(settings: Settings) -> web.Application:
    app = base_app(settings)
    add_dependency(app, POSTGRES, postgres_dependency(settings, migrations="services.analytics"))
    add_dependency(app, REDIS, redis_dependency(settings))
    add_dependency(app, DEAD_LETTER, producer_dependency(settings))
    app[ANSWERS] = AnswerCache(
        "analytics", GENERATIONS, settings.answer_cache_entries, settings.answer_cache_bytes,
        settings.answer_cache_entry_bytes, redis=app[REDIS], redis_prefix=settings.kafka.topic_prefix,
    )  # fmt: skip
    app[INDEX] = DefenderIndex(GENERATIONS, settings.analytics_index_rows)
    models = ModelFile(settings.model_path)
    models.refresh()
    app[READY_DETAILS]["epwp_model"] = models.detail
    store = AggregateStore(app[POSTGRES], models=models)
    # Projectors wait up to 50 ms for fuller fetches: bigger transactions, fewer commits.
    loop = ConsumerLoop.plays(settings, batch_handler(store), app[DEAD_LETTER], fetch_wait_ms=50)
    add_consumer(app, CONSUMER, loop, settings)
    add_background(app, "epwp_values", functools.partial(
        VALUER.keep_valued, app[POSTGRES], models, SWAP_LOCK, after_chunk, settings.model_reload_seconds))  # fmt: skip
    add_background(app, "play_copy_check", functools.partial(check_play_copy, app[POSTGRES]))
    add_background(app, "defender_index", functools.partial(app[INDEX].warm, app[POSTGRES]))
    add_restorer(app, RESTORER, settings, app[POSTGRES], "services.analytics.archive")
    setup_routes(app)
    return app
