"""The analytics URL table."""

from __future__ import annotations

from aiohttp import web

from services.analytics import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/analytics/players/{player_id}/stats", handlers.player_stats)
    app.router.add_get("/v1/analytics/leaders", handlers.leaders)
    app.router.add_get("/v1/analytics/defense/pressure-leaders", handlers.pressure_leaders)
    app.router.add_get("/v1/analytics/epa", handlers.epa_aggregates)
    app.router.add_get("/v1/analytics/teams/{team}/tendencies", handlers.tendencies)
