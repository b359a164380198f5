"""Thin HTTP handlers of the query service; reads go to the replica pool when there is one."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from services.query import games, players, plays
from services.query.keys import POSTGRES
from shared.http import json_response


def _reader(request: web.Request) -> asyncpg.Pool:
    return request.app[POSTGRES].get().replica


async def list_plays(request: web.Request) -> web.Response:
    return json_response(await plays.list_plays(_reader(request), dict(request.query)))


async def get_play(request: web.Request) -> web.Response:
    return json_response(await plays.get_play(_reader(request), request.match_info["play_id"]))


async def list_games(request: web.Request) -> web.Response:
    return json_response(await games.list_games(_reader(request), dict(request.query)))


async def get_game(request: web.Request) -> web.Response:
    return json_response(await games.get_game(_reader(request), request.match_info["game_id"]))


async def list_teams(request: web.Request) -> web.Response:
    return json_response(await games.list_teams(_reader(request)))


async def list_players(request: web.Request) -> web.Response:
    return json_response(await players.list_players(_reader(request), dict(request.query)))


async def get_player(request: web.Request) -> web.Response:
    return json_response(await players.get_player(_reader(request), request.match_info["player_id"]))
