"""The gateway's URL table: every public route, who may call it, what it costs, and who answers.

The table is the single declaration the router, the OpenAPI document and the security tests
are built from: a route cannot exist without saying which roles may call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.analytics import models as analytics
from services.gateway import admin, auditing, handlers, models
from services.gateway.auth import ADMIN, ANY_ROLE, PUBLIC, WRITERS, Guard, Handler, guarded
from services.gateway.live import live_socket
from services.gateway.proxy import proxy_to
from services.query import models as read
from shared.http import SETTINGS


@dataclass(frozen=True)
class Route:
    """One public operation: served by `handler` here, or proxied to the service `upstream`."""

    method: str
    path: str
    guard: Guard
    summary: str
    upstream: str | None = None
    handler: Handler | None = None
    body: type[Any] | None = None  # the JSON body, a msgspec Struct
    response: type[Any] | None = None  # the JSON answer, a msgspec Struct
    status: int = 200
    audit: str | None = None  # the action each call is recorded as in the audit log (auditing.py)


READ = Guard(ANY_ROLE)
OPEN = Guard(PUBLIC)
# Writes cost more than reads: an import or a large event batch is many reads' worth of work.
EVENTS = Guard(WRITERS, cost=5)
IMPORT = Guard(WRITERS, cost=20)
ADMINS = Guard(ADMIN)

ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", OPEN, "This OpenAPI document", handler=handlers.openapi),
    Route("GET", "/docs", OPEN, "The API reference page (HTML)", handler=handlers.docs),
    Route("GET", "/.well-known/jwks.json", OPEN, "Public keys that verify access tokens", handler=handlers.jwks),
    Route("POST", "/v1/auth/token", OPEN, "Sign in", handler=handlers.issue_token,
          body=models.SignIn, response=models.TokenPair),
    Route("POST", "/v1/auth/refresh", OPEN, "Spend a refresh token for a new pair", handler=handlers.refresh_token,
          body=models.RefreshRequest, response=models.TokenPair),
    Route("POST", "/v1/auth/logout", READ, "End every session of the caller", handler=handlers.logout,
          body=models.LogoutRequest, status=204, audit="auth.logout"),
    Route("POST", "/v1/admin/users", ADMINS, "Create a user", handler=admin.create_user,
          body=models.NewUser, response=models.UserOut, status=201, audit="admin.user.create"),
    Route("GET", "/v1/admin/users", ADMINS, "Users", handler=admin.list_users, response=models.UserList,
          audit="admin.user.list"),
    Route("PATCH", "/v1/admin/users/{username}", ADMINS, "Change a user's password, role or disabled flag",
          handler=admin.update_user, body=models.UserChange, response=models.UserOut, audit="admin.user.update"),
    Route("POST", "/v1/admin/keys", ADMINS, "Create an API key (shown only in this answer)",
          handler=admin.create_key, body=models.NewKey, response=models.KeyCreated, status=201,
          audit="admin.key.create"),
    Route("GET", "/v1/admin/keys", ADMINS, "API keys (never their secrets)", handler=admin.list_keys,
          response=models.KeyList, audit="admin.key.list"),
    Route("DELETE", "/v1/admin/keys/{key_id}", ADMINS, "Revoke an API key", handler=admin.revoke_key, status=204,
          audit="admin.key.revoke"),
    Route("GET", "/v1/admin/audit", ADMINS, "Audit records (admin actions and feed writes), newest first",
          handler=auditing.list_audit, response=models.AuditList, audit="admin.audit.list"),
    Route("GET", "/v1/live", Guard(ANY_ROLE, query_token=True), "Live WebSocket: subscribe, unsubscribe, resume",
          handler=live_socket, status=101),
    Route("POST", "/v1/events", EVENTS, "Push play events (object, array or NDJSON)", upstream="ingest", status=202,
          audit="feed.events"),
    Route("POST", "/v1/imports", IMPORT, "Upload GameCenter files to import", upstream="ingest", status=202,
          audit="feed.import"),
    Route("GET", "/v1/imports/{job_id}", Guard(WRITERS), "An import job's progress", upstream="ingest"),
    Route("GET", "/v1/schema/events", OPEN, "The event JSON Schema", upstream="ingest"),
    Route("GET", "/v1/plays", READ, "Plays matching the filters", upstream="query"),
    Route("GET", "/v1/plays/{play_id}", READ, "One play", upstream="query"),
    Route("GET", "/v1/games", READ, "Games in season, week and id order, a page at a time", upstream="query",
          response=read.GameList),
    Route("GET", "/v1/games/{game_id}", READ, "One game: teams, score by quarter, drives", upstream="query",
          response=read.GameDetail),
    Route("GET", "/v1/teams", READ, "Teams: each franchise, its name and the codes it played under",
          upstream="query", response=read.TeamList),
    Route("GET", "/v1/players", READ, "Players by name (q: any word's start, no case or accents), team, "
          "position, season", upstream="query", response=read.PlayerList),
    Route("GET", "/v1/players/{player_id}", READ, "One player: name, position, teams by season", upstream="query",
          response=read.PlayerDetail),
    Route("GET", "/v1/analytics/players/{player_id}/stats", READ,
          "A player's passing, rushing, receiving and defense totals", upstream="analytics"),
    Route("GET", "/v1/analytics/defense/pressure-leaders", READ, "Defenders by pressure rate", upstream="analytics"),
    Route("GET", "/v1/analytics/teams/{team}/tendencies", READ,
          "Run/pass split, yards per play, success rate and EPA per play by down and distance bucket (any code "
          "of the franchise; the regular season unless season_type is given)", upstream="analytics",
          response=analytics.Tendencies),
    Route("GET", "/v1/analytics/leaders", READ, "Statistical leaders", upstream="analytics"),
    Route("GET", "/v1/analytics/epa", READ, "Expected points added per play, total and success rate by team or "
          "player, on offense or defense (the regular season unless season_type is given)", upstream="analytics",
          response=analytics.EpaList),
    Route("GET", "/live/{game_id}", OPEN, "A page to follow a game live (HTML)", upstream="live"),
)  # fmt: skip


def setup_routes(app: web.Application) -> None:
    """Register every route of the table, each behind its guard."""
    for route in ROUTES:
        handler = route.handler if route.handler is not None else proxy_to(route.upstream or "")
        if route.audit is not None:
            handler = auditing.audited(handler, route.audit)
        # A proxied GET changes nothing upstream, so its gate may run while it is forwarded.
        speculate = (
            app[SETTINGS].speculative_reads
            and route.upstream is not None
            and route.method == "GET"
            and bool(route.guard.roles)
        )
        app.router.add_route(route.method, route.path, guarded(handler, route.guard, speculate))
