"""The audit log's HTTP side: which routes record what, and GET /v1/admin/audit.

A route of the table with an `audit` action is wrapped by `audited` inside its guard, so every
call that got past authentication, rate limits and the role check is recorded with its outcome
(the status the caller was answered), whether the handler succeeded or not. A handler names what
it acted on with `note(request, target, **detail)`; a proxied feed write is described by the
upstream's X-Snapline-Summary (services/ingest/summary.py). Detail holds names, ids, counts and
roles, never a password, key or token: handlers choose each field, nothing is copied from a body.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from structlog.contextvars import get_contextvars

from services.gateway import audit
from services.gateway.auth import Handler, client_ip
from services.gateway.keys import AUDIT_LOG, POSTGRES, PRINCIPAL, UPSTREAM_SUMMARY
from shared import params as p
from shared.deps import Unavailable
from shared.errors import ApiError
from shared.http import json_response

# What a handler says it acted on: (target, detail).
NOTE: web.RequestKey[tuple[str | None, dict[str, Any]]] = web.RequestKey("audit_note")
# Kinds of event -> the action their part of a POST /v1/events is recorded as.
EVENT_ACTIONS = {
    "play_recorded": "feed.events",
    "play_corrected": "feed.correction",
    "play_deleted": "feed.delete",
}
_object = msgspec.json.Decoder(dict[str, Any])
# One record to write: (action, target, detail).
Row = tuple[str, str | None, dict[str, Any]]


def note(request: web.Request, target: str | None, **detail: Any) -> None:
    """Say what this request acted on (the record's target and detail); the last call wins."""
    request[NOTE] = (target, detail)


def audited(handler: Handler, action: str) -> Handler:
    """`handler`, with a record of each call and its outcome queued for the audit log."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            await _record(request, action, exc.status, exc.code)
            raise
        except Unavailable:
            await _record(request, action, 503, "unavailable")
            raise
        except web.HTTPException as exc:  # aiohttp's own (a body over client_max_size: 413)
            await _record(request, action, exc.status, exc.reason.lower().replace(" ", "_"))
            raise
        except Exception:
            await _record(request, action, 500, "internal")
            raise
        await _record(request, action, response.status, _error_code(response))
        return response

    return run


def _error_code(response: web.StreamResponse) -> str | None:
    """The JSON error code of an error answer held whole (a relayed upstream error), else None."""
    if (
        response.status < 400
        or not isinstance(response, web.Response)
        or not isinstance(response.body, bytes)
    ):
        return None
    try:
        code = _object.decode(response.body).get("error", {}).get("code")
    except (msgspec.DecodeError, AttributeError):
        return None
    return code if isinstance(code, str) else None


async def _record(request: web.Request, action: str, status: int, error: str | None) -> None:
    principal = request[PRINCIPAL]
    if principal is None:  # audited routes are guarded; a public one has no actor to record
        return
    target, detail = request.get(
        NOTE, (request.match_info.get("username") or request.match_info.get("key_id"), {})
    )
    rows: list[Row] = [(action, target, dict(detail))]
    summary = _upstream_summary(request)
    if summary is not None:
        rows = _from_summary(action, summary) or rows
    for name, what, more in rows:
        if error is not None:
            more["error"] = error
        entry = audit.Entry(
            at=datetime.now(UTC), actor=principal.subject, actor_key_id=principal.key_id, role=principal.role,
            action=name, target=what, address=client_ip(request),
            request_id=str(get_contextvars().get("request_id", "")), status=status, detail=more,
        )  # fmt: skip
        await request.app[AUDIT_LOG].record(entry)


def _upstream_summary(request: web.Request) -> dict[str, Any] | None:
    raw = request.get(UPSTREAM_SUMMARY)
    if raw is None:
        return None
    try:
        return _object.decode(base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return {"summary": "unreadable"}


def _from_summary(action: str, summary: dict[str, Any]) -> list[Row]:
    """The rows a feed write's summary makes: one per kind of event (a request may mix them), or the import."""
    if action == "feed.import":
        job = summary.get("job_id")
        rest = {k: v for k, v in summary.items() if k != "job_id"}
        return [(action, job if isinstance(job, str) else None, rest)]
    kinds = summary.get("kinds")
    if not isinstance(kinds, dict) or not kinds:
        return []
    outcome = {k: summary[k] for k in ("accepted", "duplicates", "rejected") if k in summary}
    rows: list[Row] = []
    for kind, part in sorted(kinds.items()):
        if not isinstance(part, dict):
            continue
        games = part.get("games") or []
        target = games[0] if part.get("games_total") == 1 and games else None
        rows.append((EVENT_ACTIONS.get(kind, f"feed.{kind}"), target, {**part, "request": outcome}))
    return rows


def _timestamp(raw: str) -> datetime:
    try:
        value = msgspec.json.decode(msgspec.json.encode(raw), type=datetime)
    except msgspec.ValidationError:
        raise ValueError(f"{raw!r} is not an RFC 3339 time (like 2026-01-31T18:00:00Z)") from None
    if value.tzinfo is None:
        raise ValueError(f"{raw!r} has no UTC offset (add Z or +00:00)")
    return _utc(value)


def _utc(value: datetime) -> datetime:
    """`value` in UTC; ValueError when that falls outside the years 1-9999 (an offset at either end)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the years 1-9999 in UTC") from None


def _action_prefix(raw: str) -> str:
    if not raw or len(raw) > 64 or not all(c.isalnum() or c in "._" for c in raw) or not raw.isascii():
        raise ValueError("an action or its dotted prefix (letters, digits, '.', '_'), like admin.key or feed")
    return raw


TIMESTAMP = p.Param(_timestamp, {"type": "string", "format": "date-time"})
AUDIT_PARAMS: dict[str, p.Parser] = {
    "actor": p.text(128),
    "action": p.Param(
        _action_prefix, {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._]+$"}
    ),
    "target": p.text(128),
    "request_id": p.text(128),
    "status": p.integers(100, 599),
    "since": TIMESTAMP,
    "until": TIMESTAMP,
    "limit": p.integer(1, 500),
    "cursor": p.text(512),
}
# The last row's (at, id): rows newest first.
CURSOR = p.Cursor(datetime, Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)])
DEFAULT_LIMIT = 100


def _where(values: dict[str, Any]) -> p.Where:
    where = p.Where()
    if "actor" in values:
        actor = values["actor"]
        if ":" in actor:
            where.add("actor = {}", actor)
        else:  # a bare name: the user or the key of that name
            where.add("actor IN ({}, {})", f"user:{actor}", f"key:{actor}")
    if "action" in values:
        where.add("starts_with(action, {})", values["action"])
    for name in ("target", "request_id"):
        if name in values:
            where.add(f"{name} = {{}}", values[name])
    if "status" in values:
        where.add("status = ANY({}::smallint[])", values["status"])
    if "since" in values:
        where.add("at >= {}", values["since"])
    if "until" in values:
        where.add("at < {}", values["until"])
    if "cursor" in values:
        at, last_id = CURSOR.decode(values["cursor"])
        try:
            if at.tzinfo is None:
                raise ValueError("no UTC offset")
            at = _utc(at)
        except ValueError:
            raise ApiError(400, "invalid_parameters", "cursor is not one this API returned",
                           [{"field": "cursor", "message": "malformed cursor"}]) from None  # fmt: skip
        where.add("(at, id) < ({}, {})", at, last_id)
    return where


async def list_audit(request: web.Request) -> web.Response:
    """GET /v1/admin/audit: records matching the filters, newest first, a page at a time."""
    values = p.parse_params(request.query, AUDIT_PARAMS)
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        raise ApiError(400, "invalid_parameters", "invalid query parameters: since",
                       [{"field": "since", "message": "since must be before until"}])  # fmt: skip
    limit = values.get("limit", DEFAULT_LIMIT)
    where = _where(values)
    rows = await audit.newest(request.app[POSTGRES].get().primary, where.sql(), where.args, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{**dict(r), "detail": msgspec.json.decode(r["detail"])} for r in rows]
    last = rows[-1] if more else None
    return json_response(
        {"items": items, "next_cursor": CURSOR.encode(last["at"], last["id"]) if last else None}
    )
