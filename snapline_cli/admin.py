"""The gateway's admin API as the CLI uses it: `user` and `key` go through it, never to the tables."""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp

from services.gateway.accounts import check_name, check_role


class CliError(Exception):
    """A failure the CLI reports in one sentence and a non-zero exit code."""


def role_arg(value: str) -> str:
    """argparse type for --role: the error names the allowed roles."""
    try:
        return check_role(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def name_arg(value: str) -> str:
    """argparse type for a user or key name."""
    try:
        return check_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"), help="the gateway's URL"
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("SNAPLINE_API_KEY"),
        help="an admin API key (default $SNAPLINE_API_KEY; make up keeps one in .local/admin.key)",
    )  # fmt: skip


async def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One admin request: (status, parsed JSON or None); CliError when the gateway cannot be asked."""
    if not args.api_key:
        raise CliError("no admin credential: set SNAPLINE_API_KEY (or --api-key) to a key with role admin")
    url = args.gateway.rstrip("/") + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.request(method, url, json=body, headers={"X-API-Key": args.api_key}) as resp,
        ):
            data = await resp.json() if resp.content_type == "application/json" else None
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CliError(f"cannot reach the gateway at {args.gateway}: {exc}") from None
    if status in (401, 403):
        raise CliError(f"the gateway refused the admin credential: {message(data)}")
    return status, data


def message(data: Any) -> str:
    """The error message of a JSON error body."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message"))
    return "no details"
