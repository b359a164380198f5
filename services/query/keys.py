"""Typed application keys of the query service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shared.answers import AnswerCache
from shared.deps import Dependency
from shared.ondemand import Restorer

POSTGRES: web.AppKey[Dependency[Any]] = web.AppKey("postgres", Dependency)
CONSUMER: web.AppKey[Dependency[Any]] = web.AppKey("consumer", Dependency)
DEAD_LETTER: web.AppKey[Dependency[Any]] = web.AppKey("dead_letter", Dependency)
REDIS: web.AppKey[Dependency[Any]] = web.AppKey("redis", Dependency)  # the answers' shared tier (optional)
CACHE: web.AppKey[AnswerCache] = web.AppKey("cache", AnswerCache)
RESTORER: web.AppKey[Restorer] = web.AppKey("restorer", Restorer)  # reads of archived seasons
