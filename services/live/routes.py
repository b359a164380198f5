"""The URL table of the live service."""

from __future__ import annotations

from aiohttp import web

from services.live import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/live", handlers.live_socket)
    app.router.add_get("/live/{game_id}", handlers.game_page)
