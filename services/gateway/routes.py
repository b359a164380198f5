"""The gateway's URL table: who may call what, and which service answers."""

from __future__ import annotations

from aiohttp import web

from services.gateway import handlers
from services.gateway.auth import ANY_ROLE, PUBLIC, WRITERS, guarded
from services.gateway.live import live_socket
from services.gateway.proxy import proxy_to

# method, path, upstream service, roles allowed (PUBLIC: no authentication).
PROXIED: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    ("POST", "/v1/events", "ingest", WRITERS),
    ("*", "/v1/imports", "ingest", WRITERS),
    ("*", "/v1/imports/{tail:.*}", "ingest", WRITERS),
    ("GET", "/v1/schema/events", "ingest", PUBLIC),  # the event JSON Schema, for feed providers
    ("GET", "/v1/plays", "query", ANY_ROLE),
    ("GET", "/v1/plays/{tail:.*}", "query", ANY_ROLE),
    ("GET", "/v1/games", "query", ANY_ROLE),
    ("GET", "/v1/games/{tail:.*}", "query", ANY_ROLE),
    ("GET", "/v1/teams", "query", ANY_ROLE),
    ("GET", "/v1/teams/{tail:.*}", "query", ANY_ROLE),
    ("GET", "/v1/players", "query", ANY_ROLE),
    ("GET", "/v1/players/{tail:.*}", "query", ANY_ROLE),
    ("GET", "/v1/analytics/{tail:.*}", "analytics", ANY_ROLE),
    ("GET", "/live/{game_id}", "live", PUBLIC),
)


def setup_routes(app: web.Application) -> None:
    """Register the gateway's own routes and every proxied one."""
    router = app.router
    router.add_get("/openapi.json", handlers.openapi)
    router.add_post("/v1/auth/token", guarded(handlers.issue_token, PUBLIC))
    router.add_post("/v1/auth/refresh", guarded(handlers.refresh_token, PUBLIC))
    router.add_post("/v1/auth/logout", guarded(handlers.logout, ANY_ROLE))
    # Browsers cannot set headers on a WebSocket, hence the token in the query string.
    router.add_get("/v1/live", guarded(live_socket, ANY_ROLE, query_token=True))
    for method, path, upstream, roles in PROXIED:
        router.add_route(method, path, guarded(proxy_to(upstream), roles))
