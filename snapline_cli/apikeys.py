"""`snapline key add NAME --role ROLE`: a new API key, printed alone on the last line."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.gateway.accounts import ALLOWED_ROLES, add_api_key
from shared.config import Settings
from snapline_cli.gatewaydb import CliError, gateway_db, name_arg, role_arg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = subparsers.add_parser("key", help="manage API keys for machines (stat feeds, scripts)")
    actions = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create an API key (replacing an earlier key of the same name)",
        description="Prints the key once; only its SHA-256 is stored.",
    )
    add.add_argument("name", type=name_arg, metavar="NAME")
    add.add_argument("--role", type=role_arg, required=True, help=f"one of {ALLOWED_ROLES}")
    add.set_defaults(run=run_add)


async def _add(settings: Settings, name: str, role: str) -> str:
    async with gateway_db(settings) as pool:
        return await add_api_key(pool, name, role)


def run_add(args: argparse.Namespace) -> int:
    try:
        key = asyncio.run(_add(Settings.from_env("cli"), args.name, args.role))
    except CliError as exc:
        print(f"snapline key add: {exc}", file=sys.stderr)
        return 1
    # The note goes to stderr so `KEY=$(snapline key add ...)` captures the key alone.
    print(f"API key {args.name!r} with role {args.role}; it is shown only now:", file=sys.stderr)
    print(key)
    return 0
