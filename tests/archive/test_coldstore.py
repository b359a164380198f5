"""Cold storage without a database: every column type the archive maps survives Parquet exactly,
URLs are understood or refused with a sentence, and a manifest of a later format is refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from shared.coldstore import (
    FORMAT_VERSION,
    ColdStore,
    ColdStoreError,
    Manifest,
    TableFile,
    arrow_schema,
    record_batch,
    records,
)
from shared.config import Settings

COLUMNS = [("play_id", "text"), ("season", "integer"), ("gen", "bigint"), ("touchdown", "boolean"),
           ("sacks", "real"), ("epa", "double precision"), ("occurred_at", "timestamp with time zone"),
           ("participants", "json"), ("formation", "jsonb"), ("player_ids", "text[]"), ("weeks", "integer[]")]  # fmt: skip
ROWS = [
    ("2009091000:36", 2009, 2**40, True, 0.5, -0.123456789012345, datetime(2009, 9, 11, 0, 30, 1, 123456, UTC),
     '[{"player_id": "00-0020531", "name": "Ben Roethlisberger"}]', '{"offense": "SHOTGUN"}',
     ["00-0020531", "00-0022924"], [1, 2]),
    ("2009091000:57", 2009, 0, False, 1.0, None, datetime(2010, 1, 9, 23, 59, 59, tzinfo=UTC), "[]", None, [], None),
]  # fmt: skip


def _settings(**changes: str) -> Settings:
    return dataclasses.replace(Settings.from_env("cli", {}), **changes)


def test_every_mapped_type_comes_back_as_it_went(tmp_path: Path) -> None:
    store = ColdStore.open(str(tmp_path), _settings())
    schema = arrow_schema(COLUMNS)
    stream, writer = store.writer(2009, "t.parquet", schema)
    writer.write_batch(record_batch(schema, ROWS[:1]))
    writer.write_batch(record_batch(schema, ROWS[1:]))
    writer.close()
    stream.close()
    back = [row for batch in store.batches(2009, "t.parquet", 1) for row in records(batch)]
    assert back == ROWS
    meta = pq.ParquetFile(tmp_path / "2009" / "t.parquet")
    assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
    assert {f.name: f.metadata[b"pg_type"].decode() for f in meta.schema_arrow} == dict(COLUMNS)
    assert store.size(2009, "t.parquet") == (tmp_path / "2009" / "t.parquet").stat().st_size


def test_a_type_it_cannot_hold_is_named() -> None:
    with pytest.raises(ColdStoreError, match="column price is of type numeric"):
        arrow_schema([("season", "integer"), ("price", "numeric")])


def test_urls_are_understood_or_refused_with_a_sentence(tmp_path: Path) -> None:
    local = ColdStore.open(f"file://{tmp_path}", _settings())
    assert isinstance(local.fs, pafs.LocalFileSystem) and local.path(2009, "x") == f"{tmp_path}/2009/x"
    s3 = ColdStore.open("s3://bucket/cold/", _settings(archive_s3_region="eu-west-1"))
    assert isinstance(s3.fs, pafs.S3FileSystem) and s3.fs.region == "eu-west-1"
    assert (s3.path(2009, "plays.parquet"), s3.where(2009)) == (
        "bucket/cold/2009/plays.parquet",
        "s3://bucket/cold/2009/",
    )
    for url, says in (
        ("https://example.com/x", "a directory, file:// or s3:// URL"),
        ("s3://", "names no bucket"),
    ):
        with pytest.raises(ColdStoreError, match=says):
            ColdStore.open(url, _settings())


def test_a_missing_file_and_a_later_manifest_are_refused(tmp_path: Path) -> None:
    store = ColdStore.open(str(tmp_path), _settings())
    assert store.read_manifest(2009) is None
    with pytest.raises(ColdStoreError, match=r"plays\.parquet is missing"):
        list(store.batches(2009, "plays.parquet", 10))
    entry = TableFile(
        owner="query", file="games.parquet", rows=1, sha256="0" * 64, bytes=1, columns=["season"]
    )
    manifest = Manifest(season=2009, archived_at=datetime.now(UTC), location=str(tmp_path), schemas={},
                        tables={"games": entry}, checksum="0" * 64)  # fmt: skip
    store.write_manifest(manifest)
    assert store.read_manifest(2009) == manifest
    later = msgspec.structs.replace(manifest, format=FORMAT_VERSION + 1)
    store.write_manifest(later)
    with pytest.raises(ColdStoreError, match="restore with a newer snapline"):
        store.read_manifest(2009)
