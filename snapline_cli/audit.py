"""`snapline audit`: the audit log, newest first, through the gateway's admin API."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlencode

from snapline_cli.admin import CliError, add_connection_args, call, message

FILTERS = ("actor", "action", "target", "request_id", "status", "since", "until")
PAGE = 500


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="show the audit log: admin actions and feed writes, newest first",
        description="Reads GET /v1/admin/audit (needs an admin key); filters are the endpoint's own.",
    )
    audit.add_argument("--actor", help="user:NAME, key:NAME, or a bare name (either)")
    audit.add_argument("--action", help="an action or its dotted prefix: admin, admin.key, feed.delete, ...")
    audit.add_argument("--target", help="the user name, key id, game id or import job id acted on")
    audit.add_argument("--request-id", dest="request_id", help="the X-Request-ID of one request")
    audit.add_argument("--status", help="HTTP statuses, comma-separated (say 403,409)")
    audit.add_argument("--since", help="from this RFC 3339 time on (2026-01-31T18:00:00Z)")
    audit.add_argument("--until", help="before this RFC 3339 time")
    audit.add_argument("--limit", type=int, default=50, help="at most this many records (default 50)")
    audit.add_argument("--json", action="store_true", help="one JSON object a line instead of a table")
    add_connection_args(audit)
    audit.set_defaults(run=run)


async def _records(args: argparse.Namespace) -> list[dict[str, Any]]:
    query = {name: getattr(args, name) for name in FILTERS if getattr(args, name) is not None}
    items: list[dict[str, Any]] = []
    cursor = None
    while len(items) < args.limit:
        page = {**query, "limit": str(min(PAGE, args.limit - len(items)))}
        if cursor:
            page["cursor"] = cursor
        status, data = await call(args, "GET", f"/v1/admin/audit?{urlencode(page)}")
        if status != 200:
            raise CliError(f"the gateway answered {status}: {message(data)}")
        items += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    return items


def _line(record: dict[str, Any]) -> str:
    detail = json.dumps(record["detail"], separators=(",", ":"), sort_keys=True)
    fields = (record["at"], record["status"], record["action"], record["actor"], record["target"] or "-",
              record["address"], record["request_id"], detail)  # fmt: skip
    return "  ".join(str(f) for f in fields)


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("snapline audit: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        records = asyncio.run(_records(args))
    except CliError as exc:
        print(f"snapline audit: {exc}", file=sys.stderr)
        return 1
    for record in records:
        print(json.dumps(record, separators=(",", ":")) if args.json else _line(record))
    return 0
