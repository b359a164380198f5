"""Builds the live application: the only way it is built, for main() and tests alike."""

from __future__ import annotations

from aiohttp import web

from services.live.consumer import plays_loop
from services.live.hub import Hub
from services.live.keys import CONSUMER, HUB, OPTIONS, PRODUCER, REDIS, SEQUENCER, VALUES
from services.live.options import LiveOptions
from services.live.relay import heartbeats, relay
from services.live.routes import setup_routes
from services.live.sequencer import Sequencer
from services.live.values import LiveValues
from shared.cache import redis_dependency
from shared.config import Settings
from shared.epwp import ModelFile, keep_fresh
from shared.http import READY_DETAILS, add_background, add_dependency, base_app
from shared.kafka import add_consumer, producer_dependency


def create_app(settings: Settings, options: LiveOptions | None = None) -> web.Application:
    """The live service: sequencing consumer, pub/sub relay, heartbeat and the WebSocket routes."""
    options = options or LiveOptions()
    app = base_app(settings)
    app[OPTIONS] = options
    add_dependency(app, PRODUCER, producer_dependency(settings))  # dead letters
    add_dependency(app, REDIS, redis_dependency(settings))
    sequencer = app[SEQUENCER] = Sequencer(
        app[REDIS],
        settings.kafka.topic_prefix,
        options.game_ttl_seconds,
        settings.live_history_length,
        settings.live_final_history_seconds,
    )
    hub = app[HUB] = Hub(sequencer.history, options.client_queue_size)
    models = ModelFile(settings.model_path)
    models.refresh()
    app[READY_DETAILS]["epwp_model"] = models.detail
    values = app[VALUES] = LiveValues(models, settings.live_value_games)
    loop = plays_loop(settings, sequencer, app[PRODUCER], values)
    add_consumer(app, CONSUMER, loop, settings)
    add_background(app, "live-relay", lambda: relay(app[REDIS], sequencer, hub))
    add_background(
        app,
        "live-heartbeat",
        lambda: heartbeats(hub, options.heartbeat_seconds, options.ping_every_heartbeats),
    )
    add_background(app, "epwp-model", lambda: keep_fresh(models, settings.model_reload_seconds))
    app.on_shutdown.append(_going_away)
    setup_routes(app)
    return app


async def _going_away(app: web.Application) -> None:
    await app[HUB].close_all(1001, "going away")
