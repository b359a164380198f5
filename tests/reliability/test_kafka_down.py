"""Kafka stopped: ingest answers 503 + Retry-After (never a 202 Kafka did not acknowledge), import
jobs wait and retry, and both go on once the broker is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.ingest.app import create_app
from services.ingest.keys import POSTGRES, PRODUCER, REDIS
from services.ingest.options import ImportOptions
from shared.config import Settings
from shared.events import events_of
from tests.factories import event_dict
from tests.infra import PrivateKafka
from tests.ingest.conftest import game, plays, topic_records, wait_job, week_one
from tests.reliability.support import metric, readiness, until


async def _ingest(private_settings: Callable[..., Settings], serve: Any, tmp_path: Path) -> Any:
    options = ImportOptions(spool_dir=tmp_path / "spool", poll_interval=0.2, heartbeat_interval=0.5,
                            concurrency=1, max_retry_delay=1.0)  # fmt: skip
    settings = private_settings("ingest")
    client = await serve(create_app(settings, options))
    for key in (POSTGRES, PRODUCER, REDIS):
        await until(client.app[key].connected.is_set, f"ingest connected to {key}")
    client.settings = settings
    return client


async def test_with_kafka_down_ingest_answers_503_and_an_import_job_waits_then_both_go_on(
    private_settings: Callable[..., Settings], serve: Any, kafka: PrivateKafka, unique: str, tmp_path: Path
) -> None:
    # One outage for both (a broker restart costs seconds of the suite's budget).
    ingest = await _ingest(private_settings, serve, tmp_path)
    game_id = f"2019{int(unique[:6], 16) % 10**6:06d}"
    before, during = event_dict(game_id, "1"), event_dict(game_id, "2")
    resp = await ingest.post("/v1/events", json=before)
    assert resp.status == 202, await resp.text()
    unavailable = await metric(ingest, "snapline_ingest_events_total", outcome="unavailable")
    retries = await metric(ingest, "snapline_import_file_retries_total", dependency="kafka")

    await kafka.kill()
    (name,) = week_one(1)
    resp = await ingest.post(f"/v1/imports?format=gamecenter&name={name}", data=game(name))
    assert resp.status == 202, await resp.text()  # the job is queued in PostgreSQL
    job_id = (await resp.json())["job_id"]

    started = time.monotonic()
    resp = await ingest.post("/v1/events", json=during)
    answered_in = time.monotonic() - started
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "unavailable" and "kafka" in body["error"]["message"]
    assert int(resp.headers["Retry-After"]) >= 1
    assert answered_in < 25, f"the 503 took {answered_in:.1f} s"  # PUBLISH_TIMEOUT, not a hang
    # The next requests are refused at once (a metadata probe) instead of each waiting that long.
    started = time.monotonic()
    resp = await ingest.post("/v1/events", json=during)
    assert resp.status == 503 and "Retry-After" in resp.headers, await resp.text()
    assert time.monotonic() - started < 5
    # What an SRE sees: events refused for Kafka, readiness failing on it, the import retrying.
    assert await metric(ingest, "snapline_ingest_events_total", outcome="unavailable") >= unavailable + 2
    assert await metric(ingest, "snapline_ingest_refused_total", dependency="kafka") >= 2
    status, checks = await readiness(ingest)
    assert status == 503 and checks["kafka"] != "ok", checks
    await until(lambda: _retries_above(ingest, retries + 2), "the import retrying while Kafka is down")
    job = await (await ingest.get(f"/v1/imports/{job_id}")).json()
    assert job["status"] == "running" and job["files_done"] == 0, job

    await kafka.start()

    async def retried() -> Any:
        resp = await ingest.post("/v1/events", json=during)
        return await resp.json() if resp.status == 202 else None

    # The refused event's claim was released: the retry is accepted, not called a duplicate.
    accepted = await until(
        retried, "ingest accepting events again after Kafka came back", timeout=60, every=0.5
    )
    assert accepted["accepted"] == 1 and accepted["duplicates"] == 0
    job = await wait_job(ingest, job_id, timeout=90)
    expected = plays(name)
    assert job["status"] == "succeeded", job
    assert (job["files_done"], job["events_total"], job["events_accepted"]) == (1, expected, expected), job
    status, checks = await readiness(ingest)
    assert status == 200, checks

    # Every event is on the topic. A record may be there twice: the producer can still deliver
    # the record of a publish that timed out once the broker is back; the consumers' revision
    # guard applies it once. Nothing acknowledged before the outage is repeated.
    ids = [e.event_id for e in events_of(r.value for r in await topic_records(ingest.settings))]
    assert set(ids) == {before["event_id"], during["event_id"], *_import_ids(ids)}
    assert len(_import_ids(ids)) == expected and ids.count(before["event_id"]) == 1
    assert max(ids.count(i) for i in set(ids)) <= 2


def _import_ids(ids: list[str]) -> set[str]:
    return {i for i in ids if i.startswith("gc-")}


async def _retries_above(client: Any, value: float) -> bool:
    return await metric(client, "snapline_import_file_retries_total", dependency="kafka") > value
