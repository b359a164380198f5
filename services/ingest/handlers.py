"""Thin HTTP handlers of the ingest service."""

from __future__ import annotations

from aiohttp import web

from services.ingest import intake, summary, uploads
from services.ingest.keys import IMPORTER, JOBS, PUBLISHER
from shared.errors import ApiError, not_found
from shared.events import json_schema
from shared.http import SETTINGS, json_response
from shared.inputs import read_body
from shared.logging import get_logger
from shared.params import boolean, choice, parse_params, text

log = get_logger(__name__)
EVENT_PARAMS = {"live": boolean}  # live=false: history, not broadcast to live viewers
IMPORT_PARAMS = {"format": choice(frozenset({"gamecenter"}), upper=False), "name": text(255)}


async def post_events(request: web.Request) -> web.Response:
    """POST /v1/events: validate each item, publish the new ones, 202 once Kafka has them."""
    live = parse_params(request.query, EVENT_PARAMS).get("live", True)
    limit = request.app[SETTINGS].max_events_body_bytes
    body = await read_body(request, limit, "the body of POST /v1/events (MAX_EVENTS_BODY_BYTES)")
    batch = intake.parse(body, request.content_type)
    publisher = request.app[PUBLISHER]
    shown = intake.shown(batch.rejected)
    for item in shown:
        log.info("event_rejected", index=item["index"], errors=item["errors"])
    if not batch.events:
        more = f"; the first {len(shown)} are in details" if len(shown) < len(batch.rejected) else ""
        raise ApiError(422, "invalid_events", f"none of the {batch.total} events is valid{more}", shown)
    outcome = await publisher.publish([event for _, event in batch.events], live=live)
    log.info(
        "events_ingested",
        total=batch.total,
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        superseded=outcome.superseded,
        rejected=len(batch.rejected),
    )
    return json_response(
        {
            "accepted": outcome.accepted,
            "duplicates": outcome.duplicates + outcome.superseded,
            "superseded": outcome.superseded,
            "rejected": shown,
            "rejected_count": len(batch.rejected),
            "rejected_truncated": len(shown) < len(batch.rejected),
        },
        status=202,
        headers=summary.header(
            summary.events(
                (event for _, event in batch.events),
                outcome.accepted,
                outcome.duplicates + outcome.superseded,
                len(batch.rejected),
            )
        ),
    )


async def event_schema(_: web.Request) -> web.Response:
    """The JSON Schema of play events, for feed providers."""
    return json_response(json_schema())


async def post_import(request: web.Request) -> web.Response:
    """POST /v1/imports?format=gamecenter: spool the upload, queue a job, 202 with its id."""
    query = parse_params(request.query, IMPORT_PARAMS)
    if len(query.get("format", [])) != 1:
        raise ApiError(400, "invalid_parameters", "format is required: format=gamecenter",
                       [{"field": "format", "message": "required; one of gamecenter"}])  # fmt: skip
    request.app[JOBS].require()  # 503 before reading the upload when PostgreSQL is down
    importer = request.app[IMPORTER]
    limit = request.app[SETTINGS].max_body_bytes
    job_id, directory = importer.new_job()
    try:
        items = await uploads.receive(request, directory, limit, query.get("name"))
        files = await importer.submit(job_id, query["format"][0], directory, items, limit)
    except BaseException:
        await uploads.discard(directory)
        raise
    told = summary.header(summary.upload(job_id, files, (item.name for item in items)))
    return json_response(
        {"job_id": job_id, "status": "queued", "files_total": files}, status=202, headers=told
    )


async def get_import(request: web.Request) -> web.Response:
    """GET /v1/imports/{job_id}: status, counts, rate and per-file errors."""
    job_id = request.match_info["job_id"]
    job = await request.app[JOBS].get(job_id)
    if job is None:
        raise not_found(f"no import job {job_id}")
    return json_response(job)
