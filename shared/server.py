"""The HTTP server under every app: parser limits, and the parser's own errors in the JSON format.

aiohttp answers a request it cannot parse (a request line or header over its limits, bytes that
are not HTTP) before any middleware runs, in plain text, and has no hook for it
(aio-libs/aiohttp#3287). `Runner` is an AppRunner whose connections answer those in the one
error format; `serve` and the tests' servers (tests/servers.py) both start apps with it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from shared.config import Settings
from shared.errors import ApiError
from shared.logging import get_logger

log = get_logger(__name__)
_encoder = msgspec.json.Encoder()


def handler_args(settings: Settings) -> dict[str, Any]:
    """The parser limits of `settings`, as `web.Application(handler_args=...)` takes them."""
    return {
        "max_line_size": settings.max_line_bytes,
        "max_field_size": settings.max_header_bytes,
        "max_headers": settings.max_headers,
        # Bodies are never decompressed: a Content-Encoding other than identity is refused (415).
        "auto_decompress": False,
    }


def protocol_error(status: int, exc: BaseException | None, line_limit: int, field_limit: int) -> ApiError:
    """The ApiError for what aiohttp's parser (or its last-resort handler) reports."""
    if isinstance(exc, LineTooLong):
        limit = int(exc.args[1]) if len(exc.args) > 1 and str(exc.args[1]).isdigit() else -1
        if limit == field_limit and limit != line_limit:
            return ApiError(431, "headers_too_large", f"a request header is longer than {limit} bytes")
        if limit == line_limit and limit != field_limit:
            return ApiError(400, "request_line_too_long",
                            f"the request line is longer than {limit} bytes; send fewer or shorter "
                            "query parameters")  # fmt: skip
        return ApiError(400, "line_too_long", f"the request line or a header is longer than {limit} bytes")
    if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
        return ApiError(431, "headers_too_large", "the request has too many headers")
    if isinstance(exc, BadHttpMessage) or status == 400:
        reason = exc.message if isinstance(exc, BadHttpMessage) else ""
        first = (reason.splitlines() or [""])[0].strip().rstrip(":")[:120]
        detail = f": {first}" if first else ""
        return ApiError(400, "malformed_request", f"the request is not valid HTTP{detail}")
    if status == 504:
        return ApiError(504, "timeout", "the request took too long to answer")
    if status >= 500:
        return ApiError(500, "internal", "internal error; the request id names it in the logs")
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    return ApiError(status, phrase.lower().replace(" ", "_"), phrase)


class JsonErrorHandler(web.RequestHandler):
    """A connection whose parser and last-resort errors are JSON, never aiohttp's text pages."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:  # a client's malformed request: one line, no traceback
            log.warning("malformed_request", status=status, error=f"{type(exc).__name__}: {exc}"[:300],
                        peer=request.remote)  # fmt: skip
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response")
        err = protocol_error(status, exc, self.max_line_size, self.max_field_size)
        resp = web.Response(
            status=err.status, body=_encoder.encode(err.body()), content_type="application/json"
        )
        resp.force_close()
        return resp


class JsonErrorServer(web.Server):
    """A web.Server whose connections are JsonErrorHandlers."""

    def __call__(self) -> web.RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner serving its app through a JsonErrorServer."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app builds a plain web.Server; JsonErrorServer only changes which handler class its
        # connections get, so the server built for the app is re-typed rather than rebuilt.
        server.__class__ = JsonErrorServer
        return server
