"""Cold storage: a season's rows as zstd-compressed Parquet files beside a JSON manifest.

Written and read through pyarrow.fs, so one code path serves a directory (the default,
`.local/archive`) and an S3-compatible bucket (`s3://bucket/prefix`; ARCHIVE_S3_ENDPOINT and
ARCHIVE_S3_REGION; credentials from the AWS chain pyarrow's S3 client reads itself). Layout:

    <ARCHIVE_URL>/<season>/<table>.parquet    one file per table, rows in the table's key order
    <ARCHIVE_URL>/<season>/manifest.json      rows, SHA-256 and bytes of every file, schema versions

PostgreSQL types map to Arrow types one to one, each field keeping its PostgreSQL type in its
metadata (`pg_type`); json and jsonb travel as their text.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from shared.config import Settings

FORMAT_VERSION = 1  # of the layout and the manifest; a reader refuses a manifest of a later one
COMPRESSION = "zstd"
_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
    "jsonb": pa.string(),
    "text[]": pa.list_(pa.string()),
    "integer[]": pa.list_(pa.int32()),
}


class ColdStoreError(Exception):
    """Cold storage cannot be used as asked (a bad URL, a type it cannot hold, a missing file)."""


class TableFile(msgspec.Struct, frozen=True, kw_only=True):
    """One table's rows of a season in cold storage."""

    owner: str  # the service whose table it is
    file: str  # relative to the season's folder
    rows: int
    sha256: str  # shared.shadow's digest of the season's rows (every column, key order)
    bytes: int
    columns: list[str]


class Manifest(msgspec.Struct, kw_only=True):
    """What a season's archive holds; written last, so a manifest means every file is complete."""

    season: int
    format: int = FORMAT_VERSION
    archived_at: datetime
    location: str  # ARCHIVE_URL when it was written
    schemas: dict[str, str]  # package -> digest of its schema.sql applied at export (schema_migrations)
    tables: dict[str, TableFile]
    checksum: str  # shared.shadow.combined over the tables


def arrow_schema(columns: Sequence[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema of (column, PostgreSQL type) pairs."""
    fields = []
    for name, pg_type in columns:
        arrow = _ARROW.get(pg_type)
        if arrow is None:
            raise ColdStoreError(f"column {name} is of type {pg_type}, which the archive cannot hold yet")
        fields.append(pa.field(name, arrow, metadata={"pg_type": pg_type}))
    return pa.schema(fields)


def record_batch(schema: pa.Schema, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """Rows (as asyncpg returns them) as a record batch of `schema`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
    )


def records(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    """A record batch as rows for asyncpg's COPY (json as text, timestamps as aware datetimes)."""
    return list(zip(*(col.to_pylist() for col in batch.columns), strict=True))


class ColdStore:
    """Where archives go: a pyarrow filesystem and the base path inside it."""

    def __init__(self, url: str, fs: pafs.FileSystem, base: str) -> None:
        self.url = url
        self.fs = fs
        self.base = base.rstrip("/")

    def __repr__(self) -> str:
        return f"ColdStore({self.url!r}, {type(self.fs).__name__})"

    @classmethod
    def open(cls, url: str, settings: Settings) -> ColdStore:
        """A directory path (or file:// URL), or s3://bucket/prefix."""
        if url.startswith("s3://"):
            base = url.removeprefix("s3://").strip("/")
            if not base:
                raise ColdStoreError(f"ARCHIVE_URL {url!r} names no bucket")
            fs = pafs.S3FileSystem(
                endpoint_override=settings.archive_s3_endpoint or None,
                region=settings.archive_s3_region or None,
            )
            return cls(url, fs, base)
        if "://" in url and not url.startswith("file://"):
            raise ColdStoreError(f"ARCHIVE_URL {url!r}: a directory, file:// or s3:// URL is expected")
        path = os.path.abspath(url.removeprefix("file://"))
        return cls(url, pafs.LocalFileSystem(), path)

    def path(self, season: int, name: str = "") -> str:
        return f"{self.base}/{season:d}/{name}".rstrip("/")

    def where(self, season: int) -> str:
        """The season's folder as a person would look for it."""
        return f"{self.url.rstrip('/')}/{season:d}/"

    def writer(self, season: int, name: str, schema: pa.Schema) -> tuple[Any, pq.ParquetWriter]:
        """An open output stream and a zstd Parquet writer on it; close the writer, then the stream."""
        self.fs.create_dir(self.path(season), recursive=True)
        stream = self.fs.open_output_stream(self.path(season, name))
        return stream, pq.ParquetWriter(stream, schema, compression=COMPRESSION)

    def size(self, season: int, name: str) -> int:
        info = self.fs.get_file_info(self.path(season, name))
        if info.type != pafs.FileType.File:
            raise ColdStoreError(f"{self.where(season)}{name} is missing")
        return int(info.size)

    def batches(self, season: int, name: str, batch_rows: int) -> Generator[pa.RecordBatch, None, None]:
        """The file's rows in batches of at most `batch_rows` (one row group in memory at a time)."""
        self.size(season, name)  # a clear error for a missing file
        with self.fs.open_input_file(self.path(season, name)) as source:
            yield from pq.ParquetFile(source).iter_batches(batch_size=batch_rows)

    def write_manifest(self, manifest: Manifest) -> None:
        self.fs.create_dir(self.path(manifest.season), recursive=True)
        with self.fs.open_output_stream(self.path(manifest.season, "manifest.json")) as out:
            out.write(msgspec.json.format(msgspec.json.encode(manifest)))

    def read_manifest(self, season: int) -> Manifest | None:
        """The season's manifest, None when there is none."""
        path = self.path(season, "manifest.json")
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as source:
            manifest = msgspec.json.decode(source.read(), type=Manifest)
        if manifest.format > FORMAT_VERSION:
            raise ColdStoreError(
                f"{self.where(season)}manifest.json is of format {manifest.format}; this version reads "
                f"up to {FORMAT_VERSION}: restore with a newer snapline"
            )
        return manifest
