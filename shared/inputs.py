"""Checks every request passes before a handler sees it, and bounded body reads.

The path and the query string must be valid UTF-8 once percent-decoded and hold no NUL (which
PostgreSQL cannot store and no identifier needs); a query parameter appears at most once (lists
are comma-separated); a body comes without a Content-Encoding, since none is decoded.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import unquote_to_bytes

from aiohttp import web

from shared.errors import ApiError

CHUNK = 64 * 1024


def _problem(raw: str) -> str | None:
    """Why the percent-encoded `raw` is not acceptable text, or None."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 once percent-decoded"
    if "\x00" in text:
        return "holds a NUL character (%00)"
    return None


def _shown(raw: str) -> str:
    return raw if len(raw) <= 64 else raw[:64] + "..."


def check_path(request: web.Request) -> None:
    """400 naming the segment of the path that is not valid text."""
    for segment in request.rel_url.raw_path.split("/"):
        problem = _problem(segment)
        if problem is not None:
            message = f"the path segment {_shown(segment)!r} {problem}"
            raise ApiError(400, "invalid_path", message, [{"field": "path", "message": message}])


def check_query(request: web.Request) -> None:
    """400 naming every query parameter that is not valid text or is given more than once."""
    errors: list[dict[str, str]] = []
    seen: Counter[str] = Counter()
    for pair in request.rel_url.raw_query_string.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        problem = _problem(raw_name.replace("+", " "))
        if problem is not None:
            errors.append({"field": _shown(raw_name), "message": f"the name {problem}"})
            continue
        name = unquote_to_bytes(raw_name.replace("+", " ")).decode()
        seen[name] += 1
        problem = _problem(raw_value.replace("+", " "))
        if problem is not None:
            errors.append({"field": _shown(name), "message": f"the value {problem}"})
    errors += [{"field": _shown(name), "message": "given more than once; a list takes comma-separated values"}
               for name, n in seen.items() if n > 1]  # fmt: skip
    if errors:
        names = ", ".join(e["field"] for e in errors)
        raise ApiError(400, "invalid_parameters", f"invalid query parameters: {names}", errors)


def check_encoding(request: web.Request) -> None:
    """415 for a body sent with a Content-Encoding: no service decodes one."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity") or not request.body_exists:
        return
    raise ApiError(
        415,
        "unsupported_encoding",
        f"Content-Encoding {encoding} is not accepted; send the body uncompressed (identity)",
        [{"field": "Content-Encoding", "message": f"{encoding} is not supported"}],
    )


def check_request(request: web.Request) -> None:
    """Every check above; raises the ApiError of the first that fails."""
    check_path(request)
    check_query(request)
    check_encoding(request)


def too_large(limit: int, what: str = "request body") -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} is larger than the limit of {limit} bytes",
                    [{"field": "body", "message": f"at most {limit} bytes"}])  # fmt: skip


async def read_body(request: web.Request, limit: int, what: str = "request body") -> bytes:
    """The whole body, refused with 413 by its Content-Length or once more than `limit` bytes came."""
    if (request.content_length or 0) > limit:
        raise too_large(limit, what)
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise too_large(limit, what)
    return bytes(body)
