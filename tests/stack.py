"""Fixtures and helpers for tests that drive the running stack (`make test` starts it).

They fail, loudly, when the stack is not there: never a silent skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.gateway.accounts import create_key
from shared.config import Settings
from shared.db import migrate

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")


@pytest.fixture
async def stack_db() -> AsyncIterator[asyncpg.Pool]:
    """A pool on the stack's database, with the gateway's tables in place."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{GATEWAY}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):
            assert resp.status == 200, f"GET {GATEWAY}/healthz answered {resp.status}"
        pool = await asyncpg.create_pool(Settings.from_env("test").database_url, min_size=1, max_size=2)
    except (aiohttp.ClientError, TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"the Snapline stack is not reachable at {GATEWAY} ({exc}); start it with `make up`")
    assert pool is not None
    await migrate(pool, "services.gateway")
    yield pool
    await pool.close()


@pytest.fixture
async def stack_keys(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[dict[str, str]]:
    """API keys of this test's own for the roles feed and viewer."""
    made = {role: (await create_key(stack_db, f"t-{unique}-{role}", role))[1] for role in ("feed", "viewer")}
    yield made
    await stack_db.execute("DELETE FROM gateway_keys WHERE name LIKE $1", f"t-{unique}-%")


async def remove_game(pool: asyncpg.Pool, game_id: str, player_prefix: str | None = None) -> None:
    """Delete every row the stack's services made for a test's game (and its players)."""
    await pool.execute("DELETE FROM plays WHERE game_id = $1", game_id)
    await pool.execute("DELETE FROM games WHERE game_id = $1", game_id)
    await pool.execute("DELETE FROM analytics_play_contrib WHERE play_id LIKE $1", f"{game_id}:%")
    await pool.execute("DELETE FROM defender_plays WHERE play_id LIKE $1", f"{game_id}:%")
    if player_prefix:
        await pool.execute("DELETE FROM stat_totals WHERE subject_id LIKE $1", f"{player_prefix}%")
        await pool.execute("DELETE FROM players WHERE player_id LIKE $1", f"{player_prefix}%")


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    """Poll `check` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
    return result
