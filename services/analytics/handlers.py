"""Thin HTTP handlers of the analytics service: cached answers computed on the read pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from services.analytics import queries
from services.analytics.keys import ANSWERS, POSTGRES


async def _answer(request: web.Request, compute: Callable[[asyncpg.Pool], Awaitable[Any]]) -> web.Response:
    pools = request.app[POSTGRES].get()

    async def on(pool: asyncpg.Pool) -> bytes:
        return await request.app[ANSWERS].get_or_compute(request.path_qs, lambda: compute(pool))

    body = await pools.read(on)  # the replica, or the primary when it fails
    return web.Response(body=body, content_type="application/json")


async def player_stats(request: web.Request) -> web.Response:
    player_id = request.match_info["player_id"]
    return await _answer(request, lambda pool: queries.player_stats(pool, player_id, dict(request.query)))


async def leaders(request: web.Request) -> web.Response:
    return await _answer(request, lambda pool: queries.leaders(pool, dict(request.query)))


async def pressure_leaders(request: web.Request) -> web.Response:
    return await _answer(request, lambda pool: queries.pressure_leaders(pool, dict(request.query)))
