"""Forward a request to an upstream service and stream the answer back, bodies never held whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from structlog.contextvars import get_contextvars
from yarl import URL

from services.gateway.auth import Handler, admitted
from services.gateway.keys import PRINCIPAL, UPSTREAM_POOLS, UPSTREAM_SUMMARY
from services.gateway.upstreams import Timeout, Unreachable, UpstreamError, UpstreamResponse
from shared.errors import ApiError, bad_request
from shared.http import SETTINGS
from shared.logging import get_logger
from shared.telemetry import inject_http

log = get_logger(__name__)
# Only these pass through; anything else a client sends (X-Snapline-*, Authorization) stays here.
REQUEST_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "If-None-Match")
RESPONSE_HEADERS = (
    "Content-Type", "Content-Encoding", "Retry-After", "Location", "Cache-Control", "ETag",
    "Last-Modified", "Content-Disposition", "Vary",
)  # fmt: skip
SUMMARY_HEADER = "X-Snapline-Summary"  # services/ingest/summary.py
CHUNK = 64 * 1024
WHOLE = 256 * 1024  # answers up to this size (with a length) are relayed in one write


class _Limit:
    """Counts body bytes on their way through; `exceeded` tells why an upload was cut."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.exceeded = False

    async def stream(self, content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        """The body's chunks; ValueError past the limit."""
        seen = 0
        async for chunk in content.iter_chunked(CHUNK):
            seen += len(chunk)
            if seen > self.limit:
                self.exceeded = True
                raise ValueError("body over the limit")
            yield chunk


def upstream_url(request: web.Request, name: str) -> URL:
    """The URL of service `name` for this request's path and query (the live splice connects to it)."""
    base = request.app[SETTINGS].upstreams.get(name)
    if not base:
        raise ApiError(503, "upstream_unconfigured", f"no URL is configured for the {name} service")
    return URL(base.rstrip("/") + upstream_target(request), encoded=True)


def upstream_target(request: web.Request) -> str:
    """This request's encoded path and query, as sent upstream; dot segments are refused, not resolved."""
    if any(seg in (".", "..") for seg in request.rel_url.path.split("/")):
        raise bad_request("the path must not contain '.' or '..' segments")
    return request.rel_url.raw_path_qs


def upstream_headers(request: web.Request) -> dict[str, str]:
    """The allow-listed client headers plus request id, trace context, caller and identity."""
    headers = {h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers}
    headers["X-Request-ID"] = request.headers.get("X-Request-ID") or str(
        get_contextvars().get("request_id", "")
    )
    headers["X-Forwarded-For"] = request.remote or ""
    principal = request.get(PRINCIPAL)
    if principal is not None:
        headers["X-Snapline-Subject"] = principal.subject
        headers["X-Snapline-Role"] = principal.role
    return inject_http(headers)


def _unreachable(name: str, exc: BaseException) -> ApiError:
    log.warning("upstream_unreachable", upstream=name, error=f"{type(exc).__name__}: {exc}")
    return ApiError(
        503, "upstream_unavailable", f"the {name} service is not reachable; retry shortly",
        headers={"Retry-After": "2"},
    )  # fmt: skip


def _timed_out(name: str) -> ApiError:
    log.warning("upstream_timeout", upstream=name)
    return ApiError(504, "upstream_timeout", f"the {name} service did not answer in time")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than the limit of {limit} bytes")


def _body(request: web.Request, limit: _Limit) -> AsyncIterator[bytes] | None:
    if (request.content_length or 0) > limit.limit:
        raise _too_large(limit.limit)
    return limit.stream(request.content) if request.body_exists else None


def proxy_to(name: str) -> Handler:
    """A handler forwarding to the upstream service `name` of `settings.upstreams`."""

    async def forward(request: web.Request) -> web.StreamResponse:
        pool = request.app[UPSTREAM_POOLS].get(name)
        if pool is None:
            raise ApiError(503, "upstream_unconfigured", f"no URL is configured for the {name} service")
        limit = _Limit(request.app[SETTINGS].max_body_bytes)
        headers = upstream_headers(request)
        target = upstream_target(request)
        body = _body(request, limit)
        length = request.content_length if body is not None else None
        try:
            # The pooled connection is held until the body has been relayed; a wait for one is bounded.
            async with pool.request(request.method, target, headers, body, length) as upstream:
                return await _relay(request, upstream, name, headers["X-Request-ID"])
        except Unreachable as exc:
            raise _unreachable(name, exc) from None
        except Timeout:
            raise _timed_out(name) from None
        except (UpstreamError, ValueError) as exc:
            if limit.exceeded:
                raise _too_large(limit.limit) from None
            log.warning("upstream_failed", upstream=name, error=f"{type(exc).__name__}: {exc}")
            raise ApiError(502, "bad_gateway", f"the {name} service failed to answer") from None

    return forward


async def _relay(
    request: web.Request, upstream: UpstreamResponse, name: str, request_id: str
) -> web.StreamResponse:
    await admitted(request)  # a speculative read's gate decides before anything is relayed
    summary = upstream.headers.get(SUMMARY_HEADER)
    if summary is not None:  # what a write changed, for the audit log; never relayed
        request[UPSTREAM_SUMMARY] = summary
    headers = CIMultiDict((h, upstream.headers[h]) for h in RESPONSE_HEADERS if h in upstream.headers)
    # Set here: the shared middleware's copy comes too late for a response already streaming.
    headers["X-Request-ID"] = request_id
    if upstream.content_length is not None and upstream.content_length <= WHOLE:
        # Most answers are small: one response written at once saves a write per chunk and the
        # streaming machinery (measured: about a tenth of the gateway's CPU per request).
        try:
            body = await upstream.read()
        except UpstreamError as exc:
            log.warning("upstream_broke_mid_body", upstream=name, error=f"{type(exc).__name__}: {exc}")
            raise ApiError(502, "bad_gateway", f"the {name} service broke off its answer") from None
        return web.Response(body=body, status=upstream.status, reason=upstream.reason, headers=headers)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    try:
        async for chunk in upstream.iter_chunks():
            await response.write(chunk)
    except ConnectionResetError:
        return response  # the client went away; nothing is left to tell it
    except UpstreamError as exc:
        # The status line is gone already: cut the connection so the client sees a broken body.
        log.warning("upstream_broke_mid_body", upstream=name, error=f"{type(exc).__name__}: {exc}")
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
