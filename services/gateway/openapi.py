"""The OpenAPI 3.1 document, generated from the route table and the msgspec Structs, and the /docs page.

Every operation of `routes.ROUTES` is in the document, with its guard (security, `x-roles`,
`x-cost`), its path and query parameters, its body and its answers. The query parameters of
proxied routes come from the very parser tables the services validate with (`shared.params`
parsers carry their JSON Schema); bodies and the gateway's own answers from msgspec Structs
(`msgspec.json.schema_components`), the events from the event contract in `shared.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import msgspec
from msgspec import inspect as mi

from services.gateway import admin, auditing
from services.gateway.routes import ROUTES, Route
from shared import params as p
from shared.events import PlayEvent

REF = "#/components/schemas/{name}"
NO_NUL = "^[^/\\u0000]+$"  # a path segment: no slash (it would end the segment), no NUL


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: list[Any]


class Error(msgspec.Struct):
    """Every error, from every service: 4xx/5xx with this body, never HTML or a stack trace."""

    error: ErrorDetail


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _service_params() -> dict[str, Mapping[str, p.Parser]]:
    """Route path -> the parser table its service validates the query string with."""
    # Imported here: the gateway reads the other services' tables only to describe them.
    from services.analytics import epa, queries
    from services.ingest import handlers as ingest
    from services.query import games, players, plays

    return {
        "/v1/events": ingest.EVENT_PARAMS,
        "/v1/imports": ingest.IMPORT_PARAMS,
        "/v1/plays": plays.PLAY_PARAMS,
        "/v1/games": games.GAME_PARAMS,
        "/v1/players": players.PLAYER_PARAMS,
        "/v1/analytics/players/{player_id}/stats": queries.STATS_PARAMS,
        "/v1/analytics/leaders": queries.LEADER_PARAMS,
        "/v1/analytics/defense/pressure-leaders": queries.PRESSURE_PARAMS,
        "/v1/analytics/epa": epa.EPA_PARAMS,
        "/v1/analytics/teams/{team}/tendencies": epa.TENDENCY_PARAMS,
    }


# The one hand-written table: parameters no parser table declares (the gateway's own routes,
# and the spec's routes whose service has no table yet), keyed "METHOD path", and the names a route requires.
PAGE_PARAMS: dict[str, p.Parser] = {"cursor": p.text(512), "limit": p.integer(1, admin.MAX_PAGE)}
OWN_PARAMS: dict[str, Mapping[str, p.Parser]] = {
    "GET /v1/admin/users": PAGE_PARAMS,
    "GET /v1/admin/keys": PAGE_PARAMS,
    "GET /v1/admin/audit": auditing.AUDIT_PARAMS,
}
REQUIRED = {
    ("/v1/imports", "format"), ("/v1/analytics/leaders", "stat"), ("/v1/analytics/epa", "group"),
    ("/v1/analytics/epa", "side"),
}  # fmt: skip
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "team": {"type": "string", "pattern": "^[A-Z]{1,4}$"},
    "username": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"},
    "key_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.@-]+$"},
}  # fmt: skip
ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_NUL}


def _page(item: dict[str, Any], cursor: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"items": {"type": "array", "items": item}}
    if cursor:
        props["next_cursor"] = {"type": ["string", "null"]}
    return {"type": "object", "required": list(props), "properties": props}


def _object(*required: str) -> dict[str, Any]:
    return {"type": "object", "required": list(required)}


JOB_STATUS = {"enum": ["queued", "running", "succeeded", "partial", "failed"]}
# Answers of the proxied routes: what the services promise (api.md), open to added fields.
UPSTREAM_ANSWERS: dict[str, dict[str, Any]] = {
    "/v1/events": {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "rejected": {"type": "array", "items": _object("index", "errors")},
        },
    },
    "/v1/imports": {"type": "object", "required": ["job_id"], "properties": {"job_id": {"type": "string"}}},
    "/v1/imports/{job_id}": {
        "type": "object",
        "required": ["job_id", "status", "files_total", "files_done", "events_total", "events_accepted", "errors"],
        "properties": {"status": JOB_STATUS, "errors": {"type": "array", "items": _object("file", "error")}},
    },
    "/v1/schema/events": {"type": "object"},
    "/v1/plays": _page(_object("play_id", "game_id"), cursor=True),
    "/v1/plays/{play_id}": _object("play_id", "game_id"),
    "/v1/games": _page(_object("game_id")),
    "/v1/games/{game_id}": _object("game_id", "teams", "drives"),
    "/v1/teams": _page(_object("team")),
    "/v1/players": _page(_object("player_id")),
    "/v1/players/{player_id}": _object("player_id"),
    "/v1/analytics/players/{player_id}/stats": _object("player_id", "passing", "rushing", "receiving", "defense"),
    "/v1/analytics/defense/pressure-leaders": _page(_object("player_id", "snaps", "pressures", "pressure_rate")),
    "/v1/analytics/leaders": {**_page(_object("player_id", "value")), "required": ["stat", "items"]},
}  # fmt: skip
HTML = {"text/html": {"schema": {"type": "string"}}}
OWN_ANSWERS: dict[str, dict[str, Any]] = {
    "/openapi.json": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}},
    "/docs": HTML,
    "/live/{game_id}": HTML,
    "/.well-known/jwks.json": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["keys"],
                "properties": {"keys": {"type": "array", "items": _object("kid", "kty")}},
            }
        }
    },
}
RATE_HEADERS = {
    "RateLimit-Limit": "Requests allowed in the current window (the caller's tightest limit)",
    "RateLimit-Remaining": "Requests left in the current window",
    "RateLimit-Reset": "Seconds until the window is full again",
}
RETRY_AFTER = "Seconds to wait before trying again"
ERRORS = {
    400: "Bad input: an unknown or invalid parameter, path segment or body field (each one named in details)",
    401: "No credential, or one that is unknown, expired, revoked or belongs to a disabled user",
    403: "The caller's role may not call this operation (see x-roles)",
    404: "No such resource",
    405: "The path does not take this method",
    409: "It exists already",
    410: "The season asked for is archived in cold storage (`snapline restore SEASON` brings it back)",
    413: "The body is larger than the limit",
    415: "The body's Content-Type or Content-Encoding is not accepted",
    422: "None of the events is valid (details name each one's errors)",
    426: "Not a WebSocket handshake",
    429: "Over a rate limit",
    502: "The upstream service failed to answer",
    503: "A dependency is unavailable or busy (Kafka, PostgreSQL, Redis or an upstream)",
    504: "The upstream service did not answer in time",
}


def _headers(retry_after: bool | None = None) -> dict[str, Any]:
    """References to the RateLimit-* headers, and Retry-After (required when True, optional when False)."""
    out: dict[str, Any] = {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_HEADERS}
    if retry_after is not None:
        out["Retry-After"] = {
            "$ref": "#/components/headers/Retry-After" + ("" if retry_after else "-Optional")
        }
    return out


def _header_components() -> dict[str, Any]:
    seconds = {"type": "integer", "minimum": 0}
    out: dict[str, Any] = {n: {"description": d, "schema": seconds} for n, d in RATE_HEADERS.items()}
    out["Retry-After"] = {"description": RETRY_AFTER, "required": True, "schema": seconds}
    out["Retry-After-Optional"] = {"description": RETRY_AFTER, "schema": seconds}
    return out


def _parameters(route: Route) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
    out = [{"name": n, "in": "path", "required": True, "schema": PATH_PARAMS.get(n, ID)} for n in names]
    table = _service_params().get(route.path) if route.upstream else None
    for name, parser in (
        table if table is not None else OWN_PARAMS.get(f"{route.method} {route.path}", {})
    ).items():
        schema, many = p.schema_of(parser)
        param: dict[str, Any] = {"name": name, "in": "query", "required": (route.path, name) in REQUIRED}
        if many:
            param.update(style="form", explode=False, description="comma-separated")
        out.append({**param, "schema": schema})
    return out


def _body(route: Route) -> dict[str, Any] | None:
    if route.path == "/v1/events":
        many = {"type": "array", "items": _ref("PlayEvent"), "minItems": 1}
        return {
            "required": True,
            "description": "One event, a JSON array of events, or NDJSON (one event a line)",
            "content": {
                "application/json": {"schema": {"oneOf": [_ref("PlayEvent"), many]}},
                "application/x-ndjson": {"schema": {"type": "string"}, "x-item-schema": _ref("PlayEvent")},
            },
        }
    if route.path == "/v1/imports":
        binary = {"schema": {"type": "string", "format": "binary"}}
        files = {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        return {
            "required": True,
            "description": "A GameCenter .json or .json.gz, a tar (optionally gzipped), or multipart file parts",
            "content": {
                "application/octet-stream": binary,
                "application/gzip": binary,
                "application/x-tar": binary,
                "multipart/form-data": {"schema": files},
            },
        }
    if route.body is None:
        return None
    optional = route.path == "/v1/auth/logout"  # signing out needs no body
    return {"required": not optional, "content": {"application/json": {"schema": _ref(route.body.__name__)}}}


def _success(route: Route) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": route.summary, "headers": _headers()}
    if route.response is not None:
        answer["content"] = {"application/json": {"schema": _ref(route.response.__name__)}}
    elif route.upstream and route.path in UPSTREAM_ANSWERS:
        answer["content"] = {"application/json": {"schema": UPSTREAM_ANSWERS[route.path]}}
    elif route.path in OWN_ANSWERS:
        answer["content"] = OWN_ANSWERS[route.path]
    if route.status == 101:
        answer["description"] = "Switching to the WebSocket protocol"
    return answer


NO_SEASON = ("/v1/teams", "/v1/players/{player_id}")  # reads that cannot name an archived season


def _error_codes(route: Route) -> list[int]:
    codes = [400, 405, 429, 503]
    if route.guard.roles:
        codes += [401, 403]
    elif route.path in ("/v1/auth/token", "/v1/auth/refresh"):
        codes.append(401)  # a wrong password, an unknown or spent refresh token
    if route.status == 101:
        codes.append(426)  # a plain GET, not a WebSocket handshake
    if "{" in route.path or route.upstream:
        codes.append(404)
    if route.upstream in ("query", "analytics") and route.path not in NO_SEASON:
        codes.append(410)  # a season, game or play of an archived season
    if route.method in ("POST", "PATCH"):
        codes += [413, 415]
    if route.path in ("/v1/admin/users", "/v1/admin/keys") and route.method == "POST":
        codes.append(409)
    if route.path == "/v1/events":
        codes.append(422)
    if route.upstream or route.status == 101:
        codes += [502, 504]
    return sorted(codes)


def _error(status: int) -> dict[str, Any]:
    retry = True if status == 429 else False if status == 503 else None
    content = {"application/json": {"schema": _ref("Error")}}
    return {"description": ERRORS[status], "headers": _headers(retry), "content": content}


def _security(route: Route) -> list[dict[str, list[str]]]:
    if not route.guard.roles:
        return []
    schemes: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    if route.guard.query_token:
        schemes.append({"queryToken": []})
    return schemes


def operation_id(route: Route) -> str:
    """A stable id from the method and the path: `get_v1_plays_play_id`."""
    words = [w.strip("{}").replace("-", "_").replace(".", "") for w in route.path.split("/") if w]
    return "_".join([route.method.lower(), *words])


def _operation(route: Route) -> dict[str, Any]:
    roles = sorted(route.guard.roles)
    who = f"Roles: {', '.join(roles)}." if roles else "Public: no credential needed."
    op: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "description": f"{who} Rate-limit cost: {route.guard.cost}.",
        "tags": [route.upstream or ("admin" if "/admin/" in route.path else "gateway")],
        "x-roles": roles,
        "x-cost": route.guard.cost,
        "security": _security(route),
        "parameters": _parameters(route),
        "responses": {
            str(route.status): _success(route),
            **{str(c): {"$ref": f"#/components/responses/E{c}"} for c in _error_codes(route)},
        },
    }
    body = _body(route)
    if body is not None:
        op["requestBody"] = body
    return op


def _schemas() -> dict[str, Any]:
    structs = {r.body for r in ROUTES if r.body} | {r.response for r in ROUTES if r.response}
    types: list[Any] = [*sorted(structs, key=lambda t: t.__name__), Error, PlayEvent]
    (*_, event), components = msgspec.json.schema_components(types, ref_template=REF)
    for info in mi.multi_type_info(types):
        _mark_datetimes(info, components, set())
    return {**components, "PlayEvent": event}


def _mark_datetimes(info: mi.Type, components: dict[str, Any], seen: set[type]) -> None:
    """Add `format: date-time` to the datetime fields, which msgspec's schemas leave a bare string."""
    if isinstance(info, mi.UnionType):
        for member in info.types:
            _mark_datetimes(member, components, seen)
    elif isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        _mark_datetimes(info.item_type, components, seen)
    elif isinstance(info, mi.StructType) and info.cls not in seen:
        seen.add(info.cls)
        properties = components[info.cls.__name__]["properties"]
        for field in info.fields:
            if _is_datetime(field.type):
                for schema in properties[field.encode_name].get("anyOf", [properties[field.encode_name]]):
                    if schema.get("type") == "string":
                        schema["format"] = "date-time"
            _mark_datetimes(field.type, components, seen)


def _is_datetime(info: mi.Type) -> bool:
    if isinstance(info, mi.UnionType):
        return any(isinstance(t, mi.DateTimeType) for t in info.types)
    return isinstance(info, mi.DateTimeType)


@cache
def document() -> dict[str, Any]:
    """The whole document, built once from ROUTES."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Snapline API",
            "version": "1.0.0",
            "description": 'Real-time NFL play tracking. Every error is `{"error": {"code", "message", "details"}}`; '
            "every response carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "responses": {f"E{status}": _error(status) for status in ERRORS},
            "headers": _header_components(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /v1/auth/token (Ed25519-signed JWT)",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "An API key from POST /v1/admin/keys or `snapline key add`",
                },
                "queryToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "access_token",
                    "description": "An access token as a query parameter (browsers' WebSockets)",
                },
            },
        },
    }


@cache
def docs_page() -> str:
    """The API reference page: the project's own HTML and script, rendering /openapi.json in the browser."""
    return resources.files("services.gateway").joinpath("docs.html").read_text(encoding="utf-8")
