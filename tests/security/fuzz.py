"""`make fuzz`: schemathesis over the running stack's /openapi.json, every operation, bounded.

Makes a feed key and an admin key of the run's own on the stack's database (as
`python -m services.gateway.bootstrap` does), runs `st run` with the hooks in fuzz_hooks.py,
then removes everything the run made: its keys, the users and keys it created through the
admin API, its events' plays, games and totals, its import jobs and its Redis marks.
Exit status: schemathesis's (non-zero on any server error or schema violation).

    python -m tests.security.fuzz [--max-examples N] [extra st run options...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from services.gateway import accounts
from shared.config import Settings
from shared.db import migrate
from tests.security.fuzz_hooks import TEAMS

# The stack `make up` runs (tests/stack.py's GATEWAY is the suite's own, started only under pytest).
GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
# Sign-in and refresh spend the address's sign-in budget (20 a minute), which the stack's other
# clients on this machine share: those two get a handful of examples, and no coverage phase.
AUTH = "^/v1/auth/(token|refresh)$"
ROLES = ("feed", "admin")


async def _make_keys(settings: Settings, prefix: str) -> dict[str, str]:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, "services.gateway")
        return {role: (await accounts.create_key(pool, f"{prefix}-{role}", role))[1] for role in ROLES}
    finally:
        await pool.close()


async def _clean(settings: Settings, prefix: str, jobs: list[str]) -> None:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await _remove_rows(pool, prefix, jobs)
    finally:
        await pool.close()
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        async for key in redis.scan_iter(match=f"*{prefix}-*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


async def _remove_rows(pool: asyncpg.Pool, prefix: str, jobs: list[str]) -> None:
    like = f"{prefix}-%"
    for _ in range(60):  # imports of fuzzed uploads fail fast; wait until none is still working
        busy = await pool.fetchval(
            "SELECT count(*) FROM import_jobs WHERE id = ANY($1) AND status IN ('queued', 'running')", jobs
        )
        if not busy:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)  # let the consumers apply the last events before their rows go
    statements = [
        ("DELETE FROM import_jobs WHERE id = ANY($1)", jobs),
        ("DELETE FROM plays WHERE game_id LIKE $1", like),
        ("DELETE FROM games WHERE game_id LIKE $1", like),
        ("DELETE FROM analytics_play_contrib WHERE play_id LIKE $1", like),
        ("DELETE FROM defender_plays WHERE play_id LIKE $1", like),
        ("DELETE FROM stat_totals WHERE subject_id LIKE $1 OR subject_id = ANY($2)", like, list(TEAMS)),
        ("DELETE FROM players WHERE player_id LIKE $1", like),
        ("DELETE FROM gateway_users WHERE username LIKE $1", like),
        ("DELETE FROM gateway_keys WHERE name LIKE $1", like),
    ]
    for sql, *args in statements:
        with contextlib.suppress(asyncpg.UndefinedTableError):  # a service whose tables this database lacks
            await pool.execute(sql, *args)


def _st(url: str, env: dict[str, str], report: Path, *options: str) -> int:
    st = Path(sys.executable).with_name("st")
    command = [str(st), "run", url, "--checks", CHECKS, "--workers", "1", "--request-timeout", "30",
               "--report", "junit", "--report-dir", str(report), "--suppress-health-check", "all",
               "--generation-deterministic", *options]  # fmt: skip
    print("+", " ".join(command), flush=True)
    # Run inside the report directory: schemathesis keeps its crash cache in ./.schemathesis.
    return subprocess.run(command, env=env, cwd=report, check=False).returncode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.security.fuzz", description=__doc__)
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "30")))
    args, extra = parser.parse_known_args(argv)
    settings = Settings.from_env("test")
    prefix = f"fz{uuid.uuid4().hex[:8]}"
    keys = asyncio.run(_make_keys(settings, prefix))
    jobs_file = Path(tempfile.mkstemp(prefix="fuzz-jobs-")[1])
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.security.fuzz_hooks", "FUZZ_PREFIX": prefix,
           "FUZZ_FEED_KEY": keys["feed"], "FUZZ_ADMIN_KEY": keys["admin"], "FUZZ_JOBS_FILE": str(jobs_file),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    url = f"{GATEWAY.rstrip('/')}/openapi.json"
    report = Path(os.environ.get("FUZZ_REPORT_DIR", ".local/fuzz")).resolve()
    report.mkdir(parents=True, exist_ok=True)
    try:
        rest = _st(
            url, env, report, "--max-examples", str(args.max_examples), "--exclude-path-regex", AUTH, *extra
        )
        auth = _st(url, env, report, "--max-examples", "4", "--phases", "fuzzing", "--include-path-regex", AUTH,
                   "--report-junit-path", str(report / "auth-junit.xml"), *extra)  # fmt: skip
        return rest or auth
    finally:
        jobs = [line for line in jobs_file.read_text().split() if line]
        jobs_file.unlink(missing_ok=True)
        asyncio.run(_clean(settings, prefix, jobs))
        print(f"fuzz: removed what run {prefix} made ({len(jobs)} import jobs)", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
