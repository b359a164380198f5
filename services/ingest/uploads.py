"""Streams an upload (one raw file, a tar, or multipart file parts) to spool files on disk.

Memory stays bounded: the body is read in chunks and written as it arrives; the size limit is
enforced on the bytes actually received, not only on Content-Length.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from shared.errors import ApiError

CHUNK = 256 * 1024
RAW_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/json", "application/octet-stream",
                       "application/x-tar", "application/x-gtar", "application/x-compressed-tar"})  # fmt: skip
MULTIPART = "multipart/form-data"


@dataclass(frozen=True, slots=True)
class Spooled:
    """One uploaded file on disk, under the name the client gave it."""

    name: str
    path: Path
    size: int


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise too_large(self.limit)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than the limit of {limit} bytes")


async def receive(request: web.Request, directory: Path, limit: int, name: str | None) -> list[Spooled]:
    """Spool the request's files into `directory`; ApiError when there is nothing usable."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    ctype = request.content_type
    if ctype != MULTIPART and ctype not in RAW_TYPES:
        accepted = ", ".join(sorted(RAW_TYPES | {MULTIPART}))
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Type {ctype or '(none)'} is not accepted; use one of {accepted}")  # fmt: skip
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    budget = _Budget(limit)
    if ctype == MULTIPART:
        items = await _multipart(request, directory, budget)
    else:
        item = await _raw(request, directory, budget, name)
        items = [item] if item.size else []
    if not items:
        raise ApiError(400, "nothing_uploaded", "the request carries no file; send a .json.gz, .json or tar "
                       "body, or multipart/form-data file parts")  # fmt: skip
    return items


async def discard(directory: Path) -> None:
    """Remove a spool directory and everything in it."""
    await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)


async def _raw(request: web.Request, directory: Path, budget: _Budget, name: str | None) -> Spooled:
    if not name and (header := request.headers.get("Content-Disposition")):
        name = content_disposition_filename(parse_content_disposition(header)[1], "filename")
    path = directory / "upload-0"
    size = await _spool(lambda: request.content.read(CHUNK), path, budget)
    return Spooled(Path(name).name if name else "upload", path, size)


async def _multipart(request: web.Request, directory: Path, budget: _Budget) -> list[Spooled]:
    try:
        reader = await request.multipart()
        items: list[Spooled] = []
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.filename:
                continue  # nested multiparts and plain form fields carry no game file
            path = directory / f"upload-{len(items)}"
            size = await _spool(functools.partial(part.read_chunk, CHUNK), path, budget)
            items.append(Spooled(Path(part.filename).name, path, size))
    except (ValueError, AssertionError) as exc:  # aiohttp's words for a malformed multipart body
        raise ApiError(400, "malformed_multipart", f"the multipart body cannot be read: {exc}") from None
    except HttpProcessingError as exc:  # a part's headers are not HTTP (control bytes in a name, ...)
        raise ApiError(
            400, "malformed_multipart", f"a part's headers cannot be read: {exc.message[:200]!r}"
        ) from None
    return items


async def _spool(read: Callable[[], Awaitable[bytes]], path: Path, budget: _Budget) -> int:
    """Copy chunks from `read` to `path` until it returns b''; the budget stops oversized bodies."""
    out = await asyncio.to_thread(path.open, "wb")
    size = 0
    try:
        while chunk := await _next(read):
            budget.take(len(chunk))
            await asyncio.to_thread(out.write, chunk)
            size += len(chunk)
    finally:
        await asyncio.to_thread(out.close)
    return size


async def _next(read: Callable[[], Awaitable[bytes]]) -> bytes:
    try:
        return await read()
    except (ConnectionResetError, BadHttpMessage) as exc:  # the client went away or broke the framing
        raise ApiError(400, "incomplete_upload", f"the upload ended before its end: {exc}") from None
