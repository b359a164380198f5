"""Import jobs (POST/GET /v1/imports) on real GameCenter files, Kafka, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from services.ingest.options import ImportOptions
from services.ingest.uploads import CHUNK
from shared.events import events_of
from tests.ingest.conftest import game, plays, tar_of, topic_records, wait_job, week_one

GOOD = "2019090800.json.gz"
EMPTY = ("2018082351.json.gz", "2018082451.json.gz")
GZ = {"Content-Type": "application/gzip"}
UNKNOWN_GAME = msgspec.json.encode({"1999010100": {"home": {"abbr": "CAR"}, "away": {"abbr": "LA"},
                                                  "drives": {"1": {"plays": {}}}}})  # fmt: skip
# Plays as a list instead of an object: a shape the adapter does not foresee.
ODD_GAME = msgspec.json.encode({"2019090800": {"drives": {"1": {"plays": [1, 2]}}}})


async def _submit(client: Any, data: Any, headers: dict[str, str] | None = None, query: str = "") -> str:
    resp = await client.post(f"/v1/imports?format=gamecenter{query}", data=data, headers=headers)
    body = await resp.json()
    assert resp.status == 202, body
    return str(body["job_id"])


async def _distinct_events(client: Any) -> tuple[int, int]:
    """Events on the topic (records hold batches of them) and how many distinct event ids."""
    events = events_of(r.value for r in await topic_records(client.settings))
    return len(events), len({e.event_id for e in events})


async def test_one_file_imports_and_again_is_all_duplicates(start_ingest: Callable[..., Any],
                                                            import_options: ImportOptions) -> None:  # fmt: skip
    client = await start_ingest()
    expected = plays(GOOD)
    job_id = await _submit(client, game(GOOD), GZ, f"&name={GOOD}")
    job = await wait_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert (job["files_total"], job["files_done"], job["errors"]) == (1, 1, [])
    records = await topic_records(client.settings)
    assert records and all(("snapline-delivery", b"history") in r.headers for r in records)  # not live
    assert job["events_total"] == job["events_accepted"] == expected
    assert job["rate"] > 0 and job["started_at"] and job["finished_at"]
    assert not (import_options.spool_dir / job_id).exists()
    disposition = {"Content-Type": "application/octet-stream",
                   "Content-Disposition": f'attachment; filename="{GOOD}"'}  # fmt: skip
    again = await wait_job(client, await _submit(client, game(GOOD), disposition))
    assert again["status"] == "succeeded"
    assert (again["events_total"], again["events_accepted"], again["duplicates"]) == (expected, 0, expected)
    assert await _distinct_events(client) == (expected, expected)


async def test_a_tar_imports_its_good_files_and_names_each_bad_one(start_ingest: Callable[..., Any]) -> None:
    client = await start_ingest()
    good = week_one(3)
    bad = {EMPTY[0]: game(EMPTY[0]), EMPTY[1]: game(EMPTY[1]), "truncated.json.gz": game(GOOD)[:5000],
           "nonsense.json": b"this is not json", "1999010100.json": UNKNOWN_GAME, "odd.json": ODD_GAME}  # fmt: skip
    body = tar_of({**{n: game(n) for n in good}, **bad, "README.txt": b"skipped: not a game file"})
    job = await wait_job(client, await _submit(client, body, GZ))
    assert job["status"] == "partial"
    assert (job["files_total"], job["files_done"], job["files_failed"]) == (9, 9, 6)
    assert job["events_accepted"] == plays(*good)
    reasons = {e["file"]: e["error"] for e in job["errors"]}
    assert sorted(reasons) == sorted(bad)
    assert all(reason.startswith(f"{name}: ") for name, reason in reasons.items())
    assert "empty" in reasons[EMPTY[0]] and "gzip" in reasons["truncated.json.gz"]
    assert "not JSON" in reasons["nonsense.json"] and "schedule" in reasons["1999010100.json"]
    assert await _distinct_events(client) == (plays(*good),) * 2


async def test_multipart_parts_and_a_plain_tar_part(start_ingest: Callable[..., Any]) -> None:
    client = await start_ingest()
    first, second, third = week_one(3)
    form = aiohttp.FormData()
    form.add_field("format", "ignored form field")
    form.add_field("file", game(first), filename=first, content_type="application/gzip")
    form.add_field("file", gzip.decompress(game(second)), filename=second.removesuffix(".gz"))
    form.add_field("file", tar_of({third: game(third)}, mode="w"), filename="games.tar")
    form.add_field("file", b"", filename=EMPTY[0])
    job = await wait_job(client, await _submit(client, form))
    assert job["status"] == "partial"
    assert job["files_total"] == 4
    assert job["errors"] == [{"file": EMPTY[0], "error": f"{EMPTY[0]}: empty file"}]
    assert job["events_accepted"] == plays(first, second, third)


async def test_only_bad_files_is_a_failed_job(start_ingest: Callable[..., Any]) -> None:
    client = await start_ingest()
    job = await wait_job(client, await _submit(client, game(EMPTY[0]), GZ, f"&name={EMPTY[0]}"))
    assert job["status"] == "failed"
    assert [e["file"] for e in job["errors"]] == [EMPTY[0]]
    damaged = tar_of({GOOD: game(GOOD)})[:300]
    job = await wait_job(client, await _submit(client, damaged, GZ, "&name=games.tar.gz"))
    assert job["status"] == "failed"
    assert job["errors"][0]["file"] == "games.tar.gz"


@pytest.mark.parametrize(
    ("query", "data", "headers", "status", "code"),
    [
        ("?format=csv", b"x", GZ, 400, "invalid_parameters"),
        ("", b"x", GZ, 400, "invalid_parameters"),
        ("?format=gamecenter&color=red", b"x", GZ, 400, "invalid_parameters"),
        ("?format=gamecenter", b"", GZ, 400, "nothing_uploaded"),
        ("?format=gamecenter", b"x", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("?format=gamecenter", b"x" * 5000, GZ, 413, "payload_too_large"),
        # A part whose headers hold control bytes (found by schemathesis): not HTTP, so a 400.
        (
            "?format=gamecenter",
            b'--b\r\nContent-Disposition: form-data; name="\x08\x1b"\r\n\r\nx\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
            400,
            "malformed_multipart",
        ),
    ],
)
async def test_bad_uploads_get_a_json_error_naming_the_problem(
    start_ingest: Callable[..., Any], query: str, data: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    client = await start_ingest(MAX_BODY_BYTES="4096")
    resp = await client.post(f"/v1/imports{query}", data=data, headers=headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    if status == 400 and code == "invalid_parameters":
        assert error["details"][0]["field"] in ("format", "color")
    if status == 413:
        assert "4096" in error["message"]


async def test_a_streamed_body_over_the_limit_is_413_and_leaves_no_spool(
    start_ingest: Callable[..., Any], import_options: ImportOptions
) -> None:
    client = await start_ingest(MAX_BODY_BYTES=str(CHUNK))

    async def chunks() -> Any:  # no Content-Length: the limit is enforced on what arrives
        for _ in range(4):
            yield b"x" * (CHUNK // 2)

    resp = await client.post("/v1/imports?format=gamecenter", data=chunks(), headers=GZ)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert not any(import_options.spool_dir.iterdir())
    missing = await client.get("/v1/imports/nope")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_a_missing_reference_wheel_fails_the_job_clearly(
    start_ingest: Callable[..., Any], import_options: ImportOptions
) -> None:
    options = dataclasses.replace(import_options, data_wheel="/nonexistent/nflgame.whl")
    client = await start_ingest(options)
    job = await wait_job(client, await _submit(client, game(GOOD), GZ, f"&name={GOOD}"))
    assert job["status"] == "failed"
    assert job["errors"][0]["file"] == "/nonexistent/nflgame.whl"
    assert "SNAPLINE_DATA_WHEEL" in job["errors"][0]["error"]


async def test_kafka_down_keeps_the_file_pending_then_it_imports(
    start_ingest: Callable[..., Any], db: asyncpg.Connection
) -> None:
    from services.ingest.keys import POSTGRES, REDIS

    down = await start_ingest(wait=(POSTGRES, REDIS), KAFKA_BOOTSTRAP="127.0.0.1:1")
    job_id = await _submit(down, game(GOOD), GZ, f"&name={GOOD}")
    await asyncio.sleep(3)
    job = await (await down.get(f"/v1/imports/{job_id}")).json()
    assert (job["status"], job["files_done"], job["errors"]) == ("running", 0, [])
    await down.close()
    assert await db.fetchval("SELECT status FROM import_jobs WHERE id = $1", job_id) == "queued"
    up = await start_ingest()
    job = await wait_job(up, job_id)
    assert (job["status"], job["events_accepted"]) == ("succeeded", plays(GOOD))


@pytest.mark.parametrize("crash", [False, True], ids=["graceful-stop", "dead-instance"])
async def test_a_job_resumes_after_a_restart_without_duplicating_a_play(
    start_ingest: Callable[..., Any], import_options: ImportOptions, db: asyncpg.Connection, crash: bool
) -> None:
    names = week_one(12)
    slow = dataclasses.replace(import_options, concurrency=1)
    first = await start_ingest(slow)
    job_id = await _submit(first, tar_of({n: game(n) for n in names}), GZ)
    async with asyncio.timeout(60):
        while not await db.fetchval("SELECT count(*) FROM import_files WHERE job_id = $1 AND status = 'done'",
                                    job_id):  # fmt: skip
            await asyncio.sleep(0.01)
    await first.close()
    pending = await db.fetchval("SELECT count(*) FROM import_files WHERE job_id = $1 AND status = 'pending'",
                                job_id)  # fmt: skip
    assert 0 < pending < len(names), "the job must be stopped in the middle for this test to mean anything"
    assert await db.fetchval("SELECT status FROM import_jobs WHERE id = $1", job_id) == "queued"
    replayed = await _simulate_crash(db, job_id) if crash else 0
    second = await start_ingest(dataclasses.replace(import_options, stale_after=1.0))
    job = await wait_job(second, job_id)
    total = plays(*names)
    assert job["status"] == "succeeded", job
    assert (job["files_done"], job["events_total"]) == (len(names), total)
    assert (job["events_accepted"], job["duplicates"]) == (total - replayed, replayed)
    assert await _distinct_events(second) == (total, total)


async def _simulate_crash(db: asyncpg.Connection, job_id: str) -> int:
    """An instance died after Kafka took a file but before it was recorded, and stopped beating."""
    events = await db.fetchval(
        "WITH old AS (SELECT seq, events FROM import_files WHERE job_id = $1 AND status = 'done'"
        " ORDER BY seq LIMIT 1)"
        " UPDATE import_files f SET status = 'pending', events = 0, accepted = 0, finished_at = NULL"
        " FROM old WHERE f.job_id = $1 AND f.seq = old.seq RETURNING old.events",
        job_id,
    )
    await db.execute(
        "UPDATE import_jobs SET status = 'running', owner = 'dead-host-1-abc', heartbeat = now() - interval '1 hour',"
        " files_done = files_done - 1, events_total = events_total - $2, events_accepted = events_accepted - $2"
        " WHERE id = $1",
        job_id, events,
    )  # fmt: skip
    return int(events)
