"""Typed application keys of the analytics service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.analytics.index import DefenderIndex
from shared.answers import AnswerCache
from shared.deps import Dependency
from shared.ondemand import Restorer

POSTGRES: web.AppKey[Dependency[Any]] = web.AppKey("postgres", Dependency)
REDIS: web.AppKey[Dependency[Any]] = web.AppKey("redis", Dependency)
CONSUMER: web.AppKey[Dependency[Any]] = web.AppKey("consumer", Dependency)
DEAD_LETTER: web.AppKey[Dependency[Any]] = web.AppKey("dead_letter", Dependency)
ANSWERS = web.AppKey("answers", AnswerCache)
INDEX = web.AppKey("defender_index", DefenderIndex)
RESTORER = web.AppKey("restorer", Restorer)  # reads of archived seasons
