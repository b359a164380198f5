"""Turns spooled uploads into game files: tars (plain or gzipped, found by their magic bytes) are
unpacked member by member, anything else is one game file as it is."""

from __future__ import annotations

import gzip
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.ingest.uploads import CHUNK, Spooled

GAME_SUFFIXES = (".json", ".json.gz")


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a job: where it is spooled, or why there is nothing to import."""

    name: str
    path: str | None
    error: str | None = None


def is_tar(path: Path) -> bool:
    """Whether `path` holds a tar, plain or gzipped (POSIX ustar/GNU magic at offset 257)."""
    with path.open("rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path) as inner:
                head = inner.read(512)
        except (OSError, EOFError, zlib.error):
            return False  # a damaged gzip is reported as a bad game file by the adapter
    return head[257:262] == b"ustar"


def expand(items: list[Spooled], directory: Path, max_bytes: int) -> list[Entry]:
    """Every game file of the uploads, in upload order; a damaged tar becomes an error entry."""
    entries: list[Entry] = []
    for item in items:
        if is_tar(item.path):
            entries += _untar(item, directory, len(entries), max_bytes)
            item.path.unlink()
        else:
            entries.append(Entry(item.name, str(item.path)))
    return entries


def _untar(item: Spooled, directory: Path, start: int, max_bytes: int) -> list[Entry]:
    entries: list[Entry] = []
    written = 0
    try:
        with tarfile.open(item.path, mode="r|*") as tar:  # stream mode: one pass, bounded memory
            for member in tar:
                name = PurePosixPath(member.name).name
                if not member.isfile() or name.startswith(".") or not name.endswith(GAME_SUFFIXES):
                    continue
                written += member.size
                if written > max_bytes:
                    raise ValueError(f"it unpacks to more than {max_bytes} bytes")
                dest = directory / f"member-{start + len(entries)}"
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has content
                with dest.open("wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                entries.append(Entry(name, str(dest)))
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as exc:
        error = f"{item.name}: the tar is damaged after {len(entries)} files ({exc})"
        return [*entries, Entry(item.name, None, error)]
    if not entries:
        return [Entry(item.name, None, f"{item.name}: the tar holds no .json or .json.gz files")]
    return entries
