"""The suite's own stack: the five services as processes, on free ports, with their own database,
topic prefix, consumer groups and Redis key prefix, started once per test session for the tests
that drive the whole platform (e2e, CLI, security) and removed at the end. The dev stack that
`make up` runs is never written to (tests/conftest.py checks it is unchanged after the run).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bench.stack import SERVICES, BenchStack
from services.gateway.accounts import create_key
from shared.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Chosen when the suite is collected, so test modules can name the gateway's URL; the processes
# start with the first test that needs them (the `stack` fixture).
PORTS = {name: _free_port() for name in SERVICES}
GATEWAY = f"http://127.0.0.1:{PORTS['gateway']}"


@pytest.fixture(scope="session")
async def stack(epwp_model: Any) -> AsyncIterator[BenchStack]:
    """The suite's own five services (logs in .local/logs/teststack-<service>.log), with the
    session's EP/WP model."""
    prefix = f"teststack{uuid.uuid4().hex[:12]}"
    async with BenchStack(Settings.from_env("test"), log_level="info", name="teststack", prefix=prefix,
                          ports=PORTS, env={"MODEL_PATH": str(epwp_model)}) as running:  # fmt: skip
        yield running


@pytest.fixture
async def stack_db(stack: BenchStack) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the suite stack's database (the services made their tables at start-up)."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    assert pool is not None
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
    await pool.execute("DELETE FROM read_generations WHERE tag = $1", f"game:{game_id}")
    await pool.execute("DELETE FROM analytics_play_contrib WHERE play_id LIKE $1", f"{game_id}:%")
    await pool.execute("DELETE FROM defender_plays WHERE play_id LIKE $1", f"{game_id}:%")
    await pool.execute("DELETE FROM analytics_plays WHERE game_id = $1", game_id)
    await pool.execute("DELETE FROM analytics_games WHERE game_id = $1", game_id)
    if player_prefix:
        await pool.execute("DELETE FROM stat_totals WHERE subject_id LIKE $1", f"{player_prefix}%")
        await pool.execute("DELETE FROM players WHERE player_id LIKE $1", f"{player_prefix}%")
        await pool.execute("DELETE FROM player_teams WHERE player_id LIKE $1", f"{player_prefix}%")


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    """Poll `check` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
    return result
