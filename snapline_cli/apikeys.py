"""`snapline key add|revoke|list`: API keys for machines, through the gateway's admin API."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.gateway.accounts import ALLOWED_ROLES
from snapline_cli.admin import CliError, add_connection_args, call, message, name_arg, role_arg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = subparsers.add_parser("key", help="manage API keys for machines (stat feeds, scripts)")
    actions = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create an API key (replacing, and revoking, an earlier key of the same name)",
        description="Prints the key once, alone on the last line; only its SHA-256 is stored. Needs an admin key.",
    )
    add.add_argument("name", type=name_arg, metavar="NAME")
    add.add_argument("--role", type=role_arg, required=True, help=f"one of {ALLOWED_ROLES}")
    add_connection_args(add)
    add.set_defaults(run=run_add)
    revoke = actions.add_parser("revoke", help="revoke a key by its id (refused everywhere within a second)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    add_connection_args(revoke)
    revoke.set_defaults(run=run_revoke)
    listing = actions.add_parser("list", help="list keys: id, name, role, prefix, last use, revoked")
    add_connection_args(listing)
    listing.set_defaults(run=run_list)


def _fail(action: str, exc: CliError) -> int:
    print(f"snapline key {action}: {exc}", file=sys.stderr)
    return 1


def run_add(args: argparse.Namespace) -> int:
    try:
        status, data = asyncio.run(
            call(args, "POST", "/v1/admin/keys", {"name": args.name, "role": args.role})
        )
        if status != 201:
            raise CliError(f"the gateway answered {status}: {message(data)}")
    except CliError as exc:
        return _fail("add", exc)
    # The note goes to stderr so `KEY=$(snapline key add ...)` captures the key alone.
    replaced = f" (replaced and revoked key {data['replaced_key_id']})" if data.get("replaced_key_id") else ""
    print(f"API key {data['key_id']} {args.name!r} with role {args.role}{replaced}; it is shown only now:",
          file=sys.stderr)  # fmt: skip
    print(data["key"])
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    try:
        status, data = asyncio.run(call(args, "DELETE", f"/v1/admin/keys/{args.key_id}"))
        if status != 204:
            raise CliError(f"the gateway answered {status}: {message(data)}")
    except CliError as exc:
        return _fail("revoke", exc)
    print(f"revoked key {args.key_id}")
    return 0


async def _all(args: argparse.Namespace) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        status, data = await call(
            args, "GET", "/v1/admin/keys?limit=500" + (f"&cursor={cursor}" if cursor else "")
        )
        if status != 200:
            raise CliError(f"the gateway answered {status}: {message(data)}")
        items += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            return items


def run_list(args: argparse.Namespace) -> int:
    try:
        keys = asyncio.run(_all(args))
    except CliError as exc:
        return _fail("list", exc)
    for k in keys:
        state = "revoked" if k["revoked"] else "active"
        print(
            f"{k['key_id']}  {k['name']}  {k['role']}  {k['prefix']}  {state}  last used {k['last_used_at'] or 'never'}"
        )
    return 0
