"""Thin HTTP handlers of the analytics service: parameters parsed, the answer from the answer
cache (shared/answers.py) or computed on the read pool (the replica, the primary when it fails)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from services.analytics import epa, queries
from services.analytics.keys import ANSWERS, INDEX, POSTGRES, RESTORER
from services.analytics.store import ARCHIVED
from shared import params as p
from shared.answers import cache_key, seasons_or_all

_encoder = msgspec.json.Encoder()
_ARCHIVED = f"SELECT min(season) FROM {ARCHIVED} WHERE season = ANY($1::int[])"


async def _answer(
    request: web.Request, route: str, spec: dict[str, p.Parser], compute: Callable[[asyncpg.Pool], Awaitable[Any]],
    **ids: str,
) -> web.Response:  # fmt: skip
    # Parsed here for the key and the tags (a bad parameter is a 400 before any lookup).
    values = p.parse_params(dict(request.query), spec)
    key, tags, cache = cache_key(route, {**values, **ids}), seasons_or_all(values), request.app[ANSWERS]

    async def on(pool: asyncpg.Pool) -> bytes:
        async def encoded() -> bytes:
            # Only when no kept answer is valid: archiving and restoring raise the season's generations.
            if seasons := values.get("season"):
                archived = await pool.fetchval(_ARCHIVED, seasons)
                if archived is not None:
                    raise request.app[RESTORER].refusal(archived)
            return _encoder.encode(await compute(pool))

        return await cache.get(pool, key, tags, encoded)

    body = await request.app[POSTGRES].get().read(on)
    return web.Response(body=body, content_type="application/json")


async def player_stats(request: web.Request) -> web.Response:
    player_id = request.match_info["player_id"]
    return await _answer(
        request, "stats", queries.STATS_PARAMS,
        lambda pool: queries.player_stats(pool, player_id, dict(request.query)), player=player_id,
    )  # fmt: skip


async def leaders(request: web.Request) -> web.Response:
    return await _answer(
        request, "leaders", queries.LEADER_PARAMS, lambda pool: queries.leaders(pool, dict(request.query))
    )


async def pressure_leaders(request: web.Request) -> web.Response:
    return await _answer(
        request,
        "pressure",
        queries.PRESSURE_PARAMS,
        lambda pool: queries.pressure_leaders(pool, dict(request.query), request.app[INDEX]),
    )


async def epa_aggregates(request: web.Request) -> web.Response:
    return await _answer(request, "epa", epa.EPA_PARAMS, lambda pool: epa.epa(pool, dict(request.query)))


async def tendencies(request: web.Request) -> web.Response:
    team = request.match_info["team"]
    return await _answer(
        request, "tendencies", epa.TENDENCY_PARAMS,
        lambda pool: epa.tendencies(pool, team, dict(request.query)), team=team.upper(),
    )  # fmt: skip
