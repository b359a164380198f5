"""The ingest URL table."""

from __future__ import annotations

from aiohttp import web

from services.ingest import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/events", handlers.post_events)
    app.router.add_get("/v1/schema/events", handlers.event_schema)
    app.router.add_post("/v1/imports", handlers.post_import)
    app.router.add_get("/v1/imports/{job_id}", handlers.get_import)
