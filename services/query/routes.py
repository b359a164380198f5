"""The query URL table."""

from __future__ import annotations

from aiohttp import web

from services.query import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/plays", handlers.list_plays)
    app.router.add_get("/v1/plays/{play_id}", handlers.get_play)
    app.router.add_get("/v1/games", handlers.list_games)
    app.router.add_get("/v1/games/{game_id}", handlers.get_game)
    app.router.add_get("/v1/teams", handlers.list_teams)
    app.router.add_get("/v1/players", handlers.list_players)
    app.router.add_get("/v1/players/{player_id}", handlers.get_player)
