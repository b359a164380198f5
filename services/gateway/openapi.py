"""The OpenAPI 3.1 document of the public API (paths, parameters, auth), built once."""

from __future__ import annotations

from functools import cache
from typing import Any

SITUATION = (
    "season", "season_type", "week_min", "week_max", "team", "quarter", "down",
    "ytg_min", "ytg_max", "yardline_min", "yardline_max",
)  # fmt: skip
PLAY_FILTERS = (
    *SITUATION, "game_id", "defense", "player_id", "play_type", "yards_min", "yards_max",
    "touchdown", "sack", "pressure", "formation", "personnel", "limit", "cursor", "sort",
)  # fmt: skip
INTEGERS = frozenset(
    {"season", "week", "week_min", "week_max", "quarter", "down", "ytg_min", "ytg_max", "yardline_min",
     "yardline_max", "yards_min", "yards_max", "limit", "min_snaps", "after_seq"}
)  # fmt: skip
BOOLEANS = frozenset({"touchdown", "sack", "pressure"})
ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
TOKEN_PAIR = {"$ref": "#/components/schemas/TokenPair"}


def _query(*names: str) -> list[dict[str, Any]]:
    def schema(name: str) -> dict[str, str]:
        return {"type": "integer" if name in INTEGERS else "boolean" if name in BOOLEANS else "string"}

    return [{"name": n, "in": "query", "required": False, "schema": schema(n)} for n in names]


def _path(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _op(summary: str, params: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    responses = {"200": {"description": "OK"}, "4XX": ERROR, "5XX": ERROR}
    responses.update(extra.pop("responses", {}))
    return {"summary": summary, "parameters": params or [], "responses": responses, **extra}


def _json_body(*required: str) -> dict[str, Any]:
    props = {name: {"type": "string"} for name in required}
    schema = {"type": "object", "properties": props, "required": list(required)}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _auth_paths() -> dict[str, Any]:
    public: dict[str, Any] = {"security": []}
    ok = {"200": {"description": "Tokens", "content": {"application/json": {"schema": TOKEN_PAIR}}}}
    return {
        "/v1/auth/token": {"post": _op("Sign in", requestBody=_json_body("username", "password"), responses=ok, **public)},
        "/v1/auth/refresh": {"post": _op("Spend a refresh token for a new pair", requestBody=_json_body("refresh_token"), responses=ok, **public)},
        "/v1/auth/logout": {"post": _op("Revoke the access token and the refresh token given", responses={"204": {"description": "Signed out"}})},
    }  # fmt: skip


def _ingest_paths() -> dict[str, Any]:
    accepted = {"202": {"description": "Accepted"}}
    return {
        "/v1/events": {"post": _op("Push play events (object, array or NDJSON); role feed or admin", responses=accepted)},
        "/v1/imports": {"post": _op("Upload files to import; role feed or admin", _query("format"), responses=accepted)},
        "/v1/imports/{job_id}": {"get": _op("An import job's progress", _path("job_id"))},
    }  # fmt: skip


def _read_paths() -> dict[str, Any]:
    return {
        "/v1/plays": {"get": _op("Plays matching the filters", _query(*PLAY_FILTERS))},
        "/v1/plays/{play_id}": {"get": _op("One play", _path("play_id"))},
        "/v1/games": {"get": _op("Games", _query("season", "season_type", "week", "team"))},
        "/v1/games/{game_id}": {"get": _op("One game: teams, score by quarter, drives", _path("game_id"))},
        "/v1/teams": {"get": _op("Teams")},
        "/v1/players": {"get": _op("Players", _query("q", "team", "position"))},
        "/v1/players/{player_id}": {"get": _op("One player", _path("player_id"))},
        "/v1/analytics/players/{player_id}/stats": {"get": _op("A player's passing, rushing, receiving and defense totals", _path("player_id") + _query("season", "season_type", "week_min", "week_max"))},
        "/v1/analytics/defense/pressure-leaders": {"get": _op("Defenders by pressure rate", _query(*SITUATION, "position", "min_snaps", "limit"))},
        "/v1/analytics/teams/{team}/tendencies": {"get": _op("Run/pass split, yards per play and success rate by down and distance", _path("team") + _query(*SITUATION))},
        "/v1/analytics/leaders": {"get": _op("Statistical leaders", _query("stat", "season", "limit"))},
    }  # fmt: skip


def _live_paths() -> dict[str, Any]:
    upgrade = {"101": {"description": "Switching to the WebSocket protocol"}}
    return {
        "/v1/live": {"get": _op("Live WebSocket: subscribe, unsubscribe, resume", _query("access_token"), responses=upgrade)},
        "/live/{game_id}": {"get": _op("A page to follow a game live (HTML)", _path("game_id"), security=[])},
    }  # fmt: skip


def _components() -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array"}}}},
    }  # fmt: skip
    tokens = {
        "type": "object",
        "required": ["access_token", "refresh_token", "token_type", "expires_in"],
        "properties": {"access_token": {"type": "string"}, "refresh_token": {"type": "string"},
                       "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}},
    }  # fmt: skip
    return {
        "schemas": {"Error": error, "TokenPair": tokens},
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    }


@cache
def document() -> dict[str, Any]:
    """The whole document; every route needs a token or key unless its `security` is empty."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Snapline API", "version": "1.0.0"},
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {**_auth_paths(), **_ingest_paths(), **_read_paths(), **_live_paths()},
        "components": _components(),
    }
