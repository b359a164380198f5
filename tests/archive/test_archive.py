"""`snapline archive` / `snapline restore` on real games of a real season, on real PostgreSQL.

The first week of the 2009 regular season (16 games) and a 2009 playoff game played in January
2010 (its id says 2010, its season is 2009) go through the query projector and the analytics
store, beside one 2010 game; query and analytics run in process on the same tables. 2009 is
archived to a directory (ARCHIVE_KEEP_SEASONS=1 keeps 2010 alone), which must hold one zstd
Parquet file per table and a manifest whose rows and checksums are the live rows'; the
partitions and rows are gone, every read of 2009 answers 410 naming the restore command, 2010 is
untouched; a tampered file restores nothing; the real restore brings back equal checksums and
the same answers as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from services.analytics.app import create_app as analytics_app
from services.analytics.archive import OWNER as ANALYTICS
from services.analytics.rebuild import TARGET as ANALYTICS_REBUILD
from services.analytics.store import AggregateStore
from services.query.app import create_app as query_app
from services.query.archive import OWNER as QUERY
from services.query.projection import Projector
from services.query.rebuild import TARGET as QUERY_REBUILD
from shared.archive import ArchiveError, SeasonOwner, season_digests
from shared.config import Settings
from shared.db import postgres_dependency
from shared.events import PlayEventBatch, PlayRecorded, encoder
from shared.kafka import make_producer
from shared.lifecycle import Target, archive_season, restore_season
from shared.rebuild import rebuild
from snapline_cli.main import main
from tests.factories import real_games
from tests.servers import ServiceServer

WEEK_ONE = ["2009091000", *(f"20090913{n:02d}" for n in range(13)), "2009091400", "2009091401"]
PLAYOFF = "2010010900"  # a 2009 wild-card game, played in January 2010
LATER = "2010090900"  # the 2010 opener: a season the policy keeps
ARCHIVED_READS = [
    "/v1/plays?season=2009&sort=oldest&limit=500",
    f"/v1/plays?game_id={PLAYOFF}&limit=50",
    "/v1/games?season=2009",
    f"/v1/games/{WEEK_ONE[0]}",
    "/v1/players?season=2009&limit=100",
    "/v1/analytics/leaders?stat=defense.sacks&season=2009&limit=20",
    "/v1/analytics/defense/pressure-leaders?season=2009&min_snaps=1&limit=50",
    "/v1/analytics/epa?group=team&side=offense&season=2009&season_type=ALL",
]
_EMPTY = hashlib.sha256().hexdigest()  # the digest of no rows
ACTIVE_READS = ["/v1/games?season=2010", "/v1/analytics/leaders?stat=defense.sacks&season=2010"]


@pytest.fixture(scope="module")
def events() -> list[PlayRecorded]:
    games = real_games(*WEEK_ONE, PLAYOFF, LATER)
    assert {e.game.season for e in games[PLAYOFF]} == {2009}
    return [e for g in games.values() for e in g]


@dataclass
class Platform:
    settings: Settings
    service: Callable[[str], Settings]
    targets: list[Target]
    cold: Path
    query: TestClient[Any, Any]
    analytics: TestClient[Any, Any]
    pools: dict[str, Any]

    async def get(self, path: str) -> tuple[int, Any]:
        client = self.analytics if path.startswith("/v1/analytics") else self.query
        async with client.get(path) as resp:
            return resp.status, await resp.json()

    async def rows(self, season: int) -> dict[str, int]:
        out = {}
        for owner in (QUERY, ANALYTICS):
            out.update({t: n for t, (n, _) in (await self.digests(owner, season)).items()})
        return out

    async def digests(self, owner: SeasonOwner, season: int) -> dict[str, tuple[int, str]]:
        async with self.pools[owner.name].acquire() as conn, conn.transaction():
            return await season_digests(conn, owner, season)


@pytest.fixture
async def platform(
    topics: Settings, make_settings: Callable[..., Settings], database_url: str, started: Any,
    events: list[PlayRecorded], tmp_path: Path, request: pytest.FixtureRequest,
) -> AsyncIterator[Platform]:  # fmt: skip
    """Real games in a schema of the test's own, query and analytics running on it; `request.param`:
    more environment for the services (indirect parametrization)."""
    cold = tmp_path / "cold"
    env = {"DATABASE_URL": database_url, "ARCHIVE_URL": str(cold), "ARCHIVE_KEEP_SEASONS": "1",
           "ARCHIVE_BATCH_ROWS": "1000", **getattr(request, "param", {})}  # fmt: skip
    query_db = postgres_dependency(make_settings("query", **env), migrations="services.query")
    analytics_db = postgres_dependency(make_settings("analytics", **env), migrations="services.analytics")
    pools = {"query": (await started(query_db)).primary, "analytics": (await started(analytics_db)).primary}
    await Projector(query_db).apply(events)
    await AggregateStore(analytics_db).apply(events)
    clients = []
    for create, service in ((query_app, "query"), (analytics_app, "analytics")):
        client: TestClient[Any, Any] = TestClient(ServiceServer(create(make_settings(service, **env))))
        await client.start_server()
        clients.append(client)
    try:
        targets = [Target(QUERY, database_url), Target(ANALYTICS, database_url)]
        platform = Platform(
            make_settings("cli", **env), lambda name: make_settings(name, **env), targets, cold, *clients,
            pools=pools,
        )  # fmt: skip
        await _until_ready(platform)
        yield platform
    finally:
        for client in clients:
            await client.close()


async def _until_ready(platform: Platform) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    for path in ("/v1/games?season=2009", "/v1/analytics/leaders?stat=defense.sacks&season=2009"):
        while (await platform.get(path))[0] != 200:
            assert asyncio.get_running_loop().time() < deadline, f"{path} never answered"
            await asyncio.sleep(0.1)


async def _answers(platform: Platform, paths: list[str]) -> dict[str, Any]:
    out = {}
    for path in paths:
        status, body = await platform.get(path)
        assert status == 200, (path, body)
        out[path] = body
    return out


async def _exists(platform: Platform, relation: str) -> bool:
    return await platform.pools["query"].fetchval("SELECT to_regclass($1) IS NOT NULL", relation)  # type: ignore[no-any-return]


async def test_a_real_season_round_trips_through_cold_storage_with_equal_checksums(
    platform: Platform,
) -> None:
    before = {o.name: await platform.digests(o, 2009) for o in (QUERY, ANALYTICS)}
    later = {o.name: await platform.digests(o, 2010) for o in (QUERY, ANALYTICS)}
    assert before["query"]["plays"][0] > 2500 and before["analytics"]["defender_plays"][0] > 1000
    answers = await _answers(platform, ARCHIVED_READS + ACTIVE_READS)
    some_play = answers[ARCHIVED_READS[0]]["items"][0]["play_id"]
    answers[f"/v1/plays/{some_play}"] = (await platform.get(f"/v1/plays/{some_play}"))[1]

    ranking = "/v1/analytics/defense/pressure-leaders?min_snaps=1&limit=100&season_type=ALL"
    assert (await platform.get(ranking))[1] != (await platform.get(f"{ranking}&season=2010"))[1]

    archived = await archive_season(platform.settings, platform.targets, 2009)

    # The files and the manifest: one zstd Parquet file per table, rows and checksums the live rows'.
    manifest = json.loads((platform.cold / "2009" / "manifest.json").read_text())
    assert manifest["season"] == 2009 and manifest["checksum"] == archived.checksum
    assert set(manifest["schemas"]) == {"services.query", "services.analytics"}
    for owner in (QUERY, ANALYTICS):
        for table, (rows, digest) in before[owner.name].items():
            entry = manifest["tables"][table]
            assert (entry["owner"], entry["rows"], entry["sha256"]) == (owner.name, rows, digest), table
            parquet = pq.ParquetFile(platform.cold / "2009" / entry["file"])
            assert parquet.metadata.num_rows == rows
            assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
            assert entry["bytes"] == (platform.cold / "2009" / entry["file"]).stat().st_size
    # The partitions and rows are gone; 2010 is as it was.
    for part in ("plays_2009", "defender_plays_2009", "analytics_plays_2009"):
        assert not await _exists(platform, part), part
    for owner in (QUERY, ANALYTICS):
        assert {t: n for t, (n, _) in (await platform.digests(owner, 2009)).items()} == dict.fromkeys(
            owner.keys, 0
        )
        assert await platform.digests(owner, 2010) == later[owner.name]
    # Every read of 2009 (by season, by game, by play) answers 410 with the command; 2010 answers as before.
    for path in [*ARCHIVED_READS, f"/v1/plays/{some_play}"]:
        status, body = await platform.get(path)
        assert status == 410, (path, body)
        assert body["error"]["code"] == "season_archived"
        assert "snapline restore 2009" in body["error"]["message"]
    assert await _answers(platform, ACTIVE_READS) == {p: answers[p] for p in ACTIVE_READS}
    # Reads of every season now cover 2010 alone, the in-process defender index included.
    assert (await platform.get(ranking))[1] == (await platform.get(f"{ranking}&season=2010"))[1]
    status, oldest = await platform.get("/v1/plays?sort=oldest&limit=5")
    assert status == 200 and {p["season"] for p in oldest["items"]} == {2010}

    # A file changed in cold storage (same rows, one value different) restores nothing.
    plays_file = platform.cold / "2009" / "plays.parquet"
    original = plays_file.read_bytes()
    table = pq.read_table(plays_file)
    yards = table.column("yards_gained").to_pylist()
    yards[0] = (yards[0] or 0) + 1
    pq.write_table(table.set_column(table.schema.get_field_index("yards_gained"),
                                    table.schema.field("yards_gained"), pa.array(yards, pa.int32())),
                   plays_file, compression="zstd")  # fmt: skip
    with pytest.raises(ArchiveError, match="plays: the restored table has"):
        await restore_season(platform.settings, platform.targets, 2009)
    assert not await _exists(platform, "plays_2009")
    assert (await platform.get(ARCHIVED_READS[0]))[0] == 410
    plays_file.write_bytes(original)

    restored = await restore_season(platform.settings, platform.targets, 2009)
    assert restored.checksum == archived.checksum
    assert {o.name: await platform.digests(o, 2009) for o in (QUERY, ANALYTICS)} == before
    assert await _answers(platform, list(answers)) == answers


async def test_bad_requests_are_refused_with_a_sentence_and_change_nothing(platform: Platform) -> None:
    settings, targets = platform.settings, platform.targets
    before = await platform.digests(QUERY, 2010)
    for season, says in ((2010, "kept active by the policy"), (1999, "no season 1999 in the data")):
        with pytest.raises(ArchiveError, match=says):
            await archive_season(settings, targets, season)
    with pytest.raises(ArchiveError, match="season 2010 is not archived: it is active"):
        await restore_season(settings, targets, 2010)
    with pytest.raises(ArchiveError, match="no season 1999 in the data or the archive"):
        await restore_season(settings, targets, 1999)
    await archive_season(settings, targets, 2009)
    with pytest.raises(ArchiveError, match=r"already archived .*snapline restore 2009"):
        await archive_season(settings, targets, 2009)
    assert await platform.digests(QUERY, 2010) == before
    assert not (platform.cold / "2010").exists()
    # A table of someone else's making where the season's partition goes is never dropped.
    pool = platform.pools["query"]
    await pool.execute("CREATE TABLE plays_2009 (note text)")
    await pool.execute("INSERT INTO plays_2009 VALUES ('keep me')")
    with pytest.raises(ArchiveError, match="a table plays_2009 exists outside plays: nothing restored"):
        await restore_season(settings, targets, 2009)
    assert await pool.fetchval("SELECT note FROM plays_2009") == "keep me"
    assert (await platform.get("/v1/games?season=2009"))[0] == 410


async def test_the_cli_lists_the_policy_and_says_why_it_refuses(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "ARCHIVE_URL", "ARCHIVE_KEEP_SEASONS"):
        monkeypatch.setenv(name, {"DATABASE_URL": platform.targets[0].database_url,
                                  "ARCHIVE_URL": str(platform.cold), "ARCHIVE_KEEP_SEASONS": "1"}[name])  # fmt: skip
    assert await asyncio.to_thread(main, ["archive", "--policy", "--dry-run"]) == 0
    assert "seasons stay active (2010); to archive: 2009" in capsys.readouterr().out
    assert not platform.cold.exists()
    assert await asyncio.to_thread(main, ["restore", "2010"]) == 1
    assert "restore failed: season 2010 is not archived: it is active" in capsys.readouterr().err
    # Cold storage that cannot be written (a file where the folder should be): a sentence, nothing dropped.
    blocked = platform.cold.parent / "blocked"
    blocked.write_text("not a folder")
    monkeypatch.setenv("ARCHIVE_URL", str(blocked))
    assert await asyncio.to_thread(main, ["archive", "2009"]) == 1
    assert capsys.readouterr().err.startswith("archive failed: ")
    assert (await platform.get("/v1/games?season=2009"))[0] == 200
    assert (await platform.rows(2009))["plays"] > 2500
    # The policy archives what it lists, and lists what is archived.
    monkeypatch.setenv("ARCHIVE_URL", str(platform.cold))
    assert await asyncio.to_thread(main, ["archive", "--policy"]) == 0
    out = capsys.readouterr().out
    assert "to archive: 2009" in out and "archived season 2009 (query, analytics)" in out
    assert await asyncio.to_thread(main, ["archive", "--policy", "--dry-run"]) == 0
    assert f"to archive: none\narchived: 2009 in {platform.cold}/2009/" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["restore", "2009"]) == 0
    assert "restored season 2009 (query, analytics)" in capsys.readouterr().out
    for argv in (["archive"], ["archive", "2009", "--dry-run"], ["archive", "2009", "--policy"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2


async def test_late_events_and_a_rebuild_leave_an_archived_season_archived(
    platform: Platform, events: list[PlayRecorded]
) -> None:
    before = {o.name: await platform.digests(o, 2009) for o in (QUERY, ANALYTICS)}
    await archive_season(platform.settings, platform.targets, 2009)
    # Every event again through the topic, as ingest publishes them (a game's events per record).
    settings = platform.service("query")
    topic = settings.kafka.plays_topic
    late = 0
    producer = make_producer(settings.kafka, "test-archive")
    await producer.start()
    try:
        by_game: dict[str, list[PlayRecorded]] = {}
        for e in events:
            by_game.setdefault(e.game.game_id, []).append(e)
        for game_id, game in by_game.items():
            for start in range(0, len(game), 150):
                batch = PlayEventBatch(game_id=game_id, events=list(game[start : start + 150]))
                await producer.send(topic, encoder.encode(batch), key=game_id.encode())
                late += game[0].game.season == 2009
        await producer.flush()
    finally:
        await producer.stop()
    # The running consumers refuse the archived season's records (dead letters) and make no partition for it.
    deadline = asyncio.get_running_loop().time() + 60
    for service in ("query", "analytics"):
        labels = {"group": platform.service(service).consumer_group, "topic": topic, "outcome": "dead_letter"}
        while (REGISTRY.get_sample_value("snapline_consumer_messages_total", labels) or 0) < late:
            assert asyncio.get_running_loop().time() < deadline, (
                f"{service} never dead-lettered the late records"
            )
            await asyncio.sleep(0.1)
    assert set((await platform.rows(2009)).values()) == {0}
    # A rebuild replays the whole topic, 2009 included, and leaves 2009 out of what it swaps in.
    for target, service in ((QUERY_REBUILD, "query"), (ANALYTICS_REBUILD, "analytics")):
        report = await rebuild(platform.service(service), target)
        assert report.records >= len(by_game)
    for part in ("plays_2009", "defender_plays_2009", "analytics_plays_2009"):
        assert not await _exists(platform, part), part
    assert set((await platform.rows(2009)).values()) == {0}
    assert (await platform.rows(2010))["plays"] > 100
    assert (await platform.get("/v1/games?season=2009"))[0] == 410

    await restore_season(platform.settings, platform.targets, 2009)
    assert {o.name: await platform.digests(o, 2009) for o in (QUERY, ANALYTICS)} == before


async def test_a_season_restores_into_tables_that_gained_columns_since(platform: Platform) -> None:
    archived = await archive_season(platform.settings, platform.targets, 2009)
    # As a later schema.sql would: a column added to a plain table and to a partitioned one.
    await platform.pools["query"].execute("ALTER TABLE games ADD COLUMN venue text")
    await platform.pools["analytics"].execute(
        "ALTER TABLE defender_plays ADD COLUMN snap_share real DEFAULT 1"
    )
    restored = await restore_season(platform.settings, platform.targets, 2009)
    assert restored.checksum == archived.checksum
    assert await platform.pools["query"].fetchval("SELECT count(*) FROM games WHERE season = 2009") == 17
    assert (
        await platform.pools["analytics"].fetchval(
            "SELECT count(*) FROM defender_plays WHERE season = 2009 AND snap_share = 1"
        )
        == archived.tables["defender_plays"].rows
    )


@pytest.mark.parametrize("platform", [{"ARCHIVE_RESTORE_ON_DEMAND": "true"}], indirect=True)
async def test_on_demand_a_read_restores_the_reading_services_part(platform: Platform) -> None:
    before = {o.name: await platform.digests(o, 2009) for o in (QUERY, ANALYTICS)}
    reads = {"query": ARCHIVED_READS[2], "analytics": ARCHIVED_READS[5]}
    answers = await _answers(platform, list(reads.values()))
    await archive_season(platform.settings, platform.targets, 2009)
    deadline = asyncio.get_running_loop().time() + 60
    for name, path in reads.items():
        client = platform.analytics if name == "analytics" else platform.query
        async with client.get(path) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "10"
            assert (await resp.json())["error"]["code"] == "season_restoring"
        while (status_body := await platform.get(path))[0] != 200:
            assert status_body[0] == 503, status_body
            assert asyncio.get_running_loop().time() < deadline, f"{name} never restored 2009"
            await asyncio.sleep(0.1)
        assert status_body[1] == answers[path]
        # Each service brought back its own tables, and only those.
        owner = QUERY if name == "query" else ANALYTICS
        assert await platform.digests(owner, 2009) == before[name]
        if name == "query":
            assert set((await platform.digests(ANALYTICS, 2009)).values()) == {(0, _EMPTY)}
    with pytest.raises(ArchiveError, match="season 2009 is not archived: it is active"):
        await restore_season(platform.settings, platform.targets, 2009)


@pytest.mark.parametrize("platform", [{"ARCHIVE_RESTORE_ON_DEMAND": "true"}], indirect=True)
async def test_on_demand_a_restore_that_fails_is_said_and_not_retried_at_once(platform: Platform) -> None:
    await archive_season(platform.settings, platform.targets, 2009)
    (platform.cold / "2009" / "manifest.json").unlink()
    path = ARCHIVED_READS[2]
    assert (await platform.get(path))[0] == 503
    deadline = asyncio.get_running_loop().time() + 30
    while (status_body := await platform.get(path))[0] != 410:
        assert asyncio.get_running_loop().time() < deadline, status_body
        await asyncio.sleep(0.1)
    details = status_body[1]["error"]["details"]
    assert "holds no manifest.json" in details[-1]["restore_on_demand_failed"]
    assert (await platform.get(path))[0] == 410  # within the backoff: no new attempt
    assert set((await platform.digests(QUERY, 2009)).values()) == {(0, _EMPTY)}
