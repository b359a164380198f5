"""Thin HTTP handlers of the query service: parameters parsed, the answer from the cache or
computed (services/query/cache.py); reads go to the replica when there is one
(and to the primary while it fails them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from services.query import games, players, plays
from services.query.archived import checked, missing_game
from services.query.cache import cache_key
from services.query.keys import CACHE, POSTGRES, RESTORER
from shared import params as p

_encoder = msgspec.json.Encoder()


async def _answer(
    request: web.Request, route: str, values: dict[str, Any], tags: list[str],
    compute: Callable[[asyncpg.Pool], Awaitable[Any]],
) -> web.Response:  # fmt: skip
    key, cache = cache_key(route, values), request.app[CACHE]

    async def on(pool: asyncpg.Pool) -> bytes:
        async def encoded() -> bytes:
            return _encoder.encode(await compute(pool))

        return await cache.get(pool, key, tags, encoded)

    body = await request.app[POSTGRES].get().read(on)  # the replica, or the primary when it fails
    return web.Response(body=body, content_type="application/json")


def _game_tag(play_id: str) -> list[str]:
    game_id, sep, _ = play_id.rpartition(":")
    return [f"game:{game_id}"] if sep else ["all"]


async def list_plays(request: web.Request) -> web.Response:
    values = p.parse_params(dict(request.query), plays.PLAY_PARAMS)
    compute = checked(lambda db: plays.page_plays(db, values), values.get("season", ()),
                      values.get("game_id", ()), request.app[RESTORER].refusal)  # fmt: skip
    return await _answer(request, "plays", values, plays.tags(values), compute)


async def get_play(request: web.Request) -> web.Response:
    play_id = request.match_info["play_id"]
    compute = missing_game(
        lambda db: plays.get_play(db, play_id), play_id.rpartition(":")[0], request.app[RESTORER].refusal
    )
    return await _answer(request, "play", {"id": play_id}, _game_tag(play_id), compute)


async def list_games(request: web.Request) -> web.Response:
    values = p.parse_params(dict(request.query), games.GAME_PARAMS)
    compute = checked(
        lambda db: games.page_games(db, values),
        values.get("season", ()),
        refusal=request.app[RESTORER].refusal,
    )
    return await _answer(request, "games", values, games.tags(values), compute)


async def get_game(request: web.Request) -> web.Response:
    game_id = request.match_info["game_id"]
    compute = missing_game(lambda db: games.get_game(db, game_id), game_id, request.app[RESTORER].refusal)
    return await _answer(request, "game", {"id": game_id}, [f"game:{game_id}"], compute)


async def list_teams(request: web.Request) -> web.Response:
    return await _answer(request, "teams", {}, ["all"], games.list_teams)


async def list_players(request: web.Request) -> web.Response:
    values = p.parse_params(dict(request.query), players.PLAYER_PARAMS)
    compute = checked(
        lambda db: players.page_players(db, values), values.get("season", ()),
        refusal=request.app[RESTORER].refusal,
    )  # fmt: skip
    return await _answer(request, "players", values, players.tags(values), compute)


async def get_player(request: web.Request) -> web.Response:
    player_id = request.match_info["player_id"]
    return await _answer(
        request, "player", {"id": player_id}, ["all"], lambda db: players.get_player(db, player_id)
    )
