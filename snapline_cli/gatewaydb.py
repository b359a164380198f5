"""The gateway's database as the CLI sees it: a small pool with the gateway's migrations applied."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from yarl import URL

from services.gateway.accounts import check_name, check_role
from shared.config import Settings
from shared.db import migrate


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


@asynccontextmanager
async def gateway_db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on DATABASE_URL with the gateway's schema in place; CliError when unreachable."""
    where = URL(settings.database_url).with_password(None)  # never print the password
    try:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise CliError(f"cannot reach PostgreSQL at {where}: {exc}") from None
    try:
        await migrate(pool, "services.gateway")
        yield pool
    finally:
        await pool.close()
