"""`python -m services.gateway.bootstrap NAME --role admin`: the first admin API key of an installation.

The admin API needs an admin to call it, so the set-up makes the first key here, with the
gateway's own accounts module on the gateway's own database (the same code path as
`POST /v1/admin/keys`, without HTTP). The key is printed alone on stdout, once; the audit log
records it as made by `setup:bootstrap`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import UTC, datetime

import asyncpg

from services.gateway import accounts, audit
from shared.config import Settings
from shared.db import migrate


async def _make(settings: Settings, name: str, role: str) -> str:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, timeout=10)
    try:
        await migrate(pool, "services.gateway")
        made, key, replaced = await accounts.create_key(pool, name, role)
        # The one admin action that does not come through the gateway: recorded here, as the set-up.
        entry = audit.Entry(
            at=datetime.now(UTC), actor="setup:bootstrap", actor_key_id=None, role="admin",
            action="admin.key.create", target=made.key_id, address="local",
            request_id=f"bootstrap-{secrets.token_hex(8)}", status=201,
            detail={"name": made.name, "role": made.role, "prefix": made.prefix, "replaced": replaced},
        )  # fmt: skip
        await audit.insert(pool, [entry])
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
