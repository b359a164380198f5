"""`snapline user add NAME --role ROLE`: create or update a user through the admin API; the password comes on stdin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from services.gateway.accounts import ALLOWED_ROLES
from snapline_cli.admin import CliError, add_connection_args, call, message, name_arg, role_arg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = subparsers.add_parser("user", help="manage users who sign in to the API")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create a user, or set an existing user's password and role",
        description="The password is read from standard input (one line). Needs an admin API key.",
    )
    add.add_argument("name", type=name_arg, metavar="NAME")
    add.add_argument("--role", type=role_arg, required=True, help=f"one of {ALLOWED_ROLES}")
    add_connection_args(add)
    add.set_defaults(run=run_add)


def read_password() -> str:
    """One line of standard input (without echo on a terminal); CliError when empty."""
    # getpass keeps a typed password off the screen; a pipe gives exactly one line.
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("the password is empty: pass it as one line on standard input")
    return password


async def _add(args: argparse.Namespace, password: str) -> bool:
    body = {"username": args.name, "password": password, "role": args.role}
    status, data = await call(args, "POST", "/v1/admin/users", body)
    if status == 201:
        return True
    if status == 409:
        status, data = await call(
            args, "PATCH", f"/v1/admin/users/{args.name}", {"password": password, "role": args.role}
        )
        if status == 200:
            return False
    raise CliError(f"the gateway answered {status}: {message(data)}")


def run_add(args: argparse.Namespace) -> int:
    try:
        password = read_password()
        created = asyncio.run(_add(args, password))
    except CliError as exc:
        print(f"snapline user add: {exc}", file=sys.stderr)
        return 1
    print(f"{'created' if created else 'updated'} user {args.name!r} with role {args.role}")
    return 0
