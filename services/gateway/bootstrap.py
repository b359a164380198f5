"""`python -m services.gateway.bootstrap NAME --role admin`: the first admin API key of an installation.

The admin API needs an admin to call it, so the set-up makes the first key here, with the
gateway's own accounts module on the gateway's own database (the same code path as
`POST /v1/admin/keys`, without HTTP). The key is printed alone on stdout, once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from services.gateway import accounts
from shared.config import Settings
from shared.db import migrate


async def _make(settings: Settings, name: str, role: str) -> str:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, timeout=10)
    try:
        await migrate(pool, "services.gateway")
        _, key, _ = await accounts.create_key(pool, name, role)
    finally:
        await pool.close()
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.bootstrap", description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--role", default="admin", choices=accounts.ROLES)
    args = parser.parse_args(argv)
    try:
        key = asyncio.run(_make(Settings.from_env("gateway"), accounts.check_name(args.name), args.role))
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 1
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
