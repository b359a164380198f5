"""Thin HTTP handlers of the ingest service."""

from __future__ import annotations

from aiohttp import web

from services.ingest import intake
from services.ingest.keys import PUBLISHER
from shared.errors import ApiError
from shared.events import json_schema
from shared.http import json_response
from shared.logging import get_logger

log = get_logger(__name__)


async def post_events(request: web.Request) -> web.Response:
    """POST /v1/events: validate each item, publish the new ones, 202 once Kafka has them."""
    body = await request.read()
    batch = intake.parse(body, request.content_type)
    publisher = request.app[PUBLISHER]
    for item in batch.rejected:
        log.info("event_rejected", index=item["index"], errors=item["errors"])
    if not batch.events:
        raise ApiError(422, "invalid_events", f"none of the {batch.total} events is valid", batch.rejected)
    outcome = await publisher.publish([event for _, event in batch.events])
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
            "rejected": batch.rejected,
        },
        status=202,
    )


async def event_schema(_: web.Request) -> web.Response:
    """The JSON Schema of play events, for feed providers."""
    return json_response(json_schema())
