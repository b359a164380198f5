"""Typed application keys of the live service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.live.hub import Hub
from services.live.options import LiveOptions
from services.live.sequencer import Sequencer
from services.live.values import LiveValues
from shared.deps import Dependency

REDIS: web.AppKey[Dependency[Any]] = web.AppKey("redis", Dependency)
PRODUCER: web.AppKey[Dependency[Any]] = web.AppKey("producer", Dependency)
CONSUMER: web.AppKey[Dependency[Any]] = web.AppKey("consumer", Dependency)
SEQUENCER = web.AppKey("sequencer", Sequencer)
HUB = web.AppKey("hub", Hub)
OPTIONS = web.AppKey("options", LiveOptions)
VALUES = web.AppKey("values", LiveValues)
