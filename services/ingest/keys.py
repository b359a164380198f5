"""Typed application keys of the ingest service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.ingest.importer import Importer
from services.ingest.jobs import JobStore
from services.ingest.publisher import Publisher
from shared.deps import Dependency

PRODUCER: web.AppKey[Dependency[Any]] = web.AppKey("producer", Dependency)
REDIS: web.AppKey[Dependency[Any]] = web.AppKey("redis", Dependency)
POSTGRES: web.AppKey[Dependency[Any]] = web.AppKey("postgres", Dependency)
PUBLISHER = web.AppKey("publisher", Publisher)
JOBS = web.AppKey("jobs", JobStore)
IMPORTER = web.AppKey("importer", Importer)
