"""The raw baseline: parse GameCenter files in one process and COPY flat rows into PostgreSQL."""

from __future__ import annotations

import gzip
import time
import zipfile
from typing import Any

import asyncpg
import msgspec

RAW_SCHEMA = """
CREATE TABLE raw_plays (season int, game_id text, play_id text, drive int, qtr int, down int,
    ydstogo int, yrdln text, posteam text, note text, description text) PARTITION BY RANGE (season);
CREATE TABLE raw_participants (season int, game_id text, play_id text, player_id text, team text,
    stat_id int, yards int) PARTITION BY RANGE (season);
"""


def flatten(data: bytes, seasons: dict[str, int]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One file to play rows and credit rows, with no validation beyond what COPY needs."""
    plays: list[tuple[Any, ...]] = []
    credits: list[tuple[Any, ...]] = []
    if not data:
        return plays, credits
    doc = msgspec.json.decode(gzip.decompress(data))
    for game_id, game in doc.items():
        if not isinstance(game, dict) or "drives" not in game:
            continue
        season = seasons.get(game_id, int(game_id[:4]))
        for dk, drive in game["drives"].items():
            if not dk.isdigit():
                continue
            for pid, p in drive["plays"].items():
                plays.append((season, game_id, pid, int(dk), p.get("qtr"), p.get("down"), p.get("ydstogo"),
                              p.get("yrdln"), p.get("posteam"), p.get("note"), p.get("desc")))  # fmt: skip
                for player, cs in (p.get("players") or {}).items():
                    for c in cs:
                        credits.append((season, game_id, pid, player, c.get("clubcode"), c["statId"],
                                        int(c.get("yards") or 0)))  # fmt: skip
    return plays, credits


async def raw_path(
    dsn: str, wheel_path: str, members: list[str], seasons: dict[str, int]
) -> dict[str, float]:
    """Parse every member in this process, then COPY; returns the timings and row counts."""
    started = time.perf_counter()
    plays: list[tuple[Any, ...]] = []
    credits: list[tuple[Any, ...]] = []
    with zipfile.ZipFile(wheel_path) as wheel:
        for m in members:
            try:
                p, c = flatten(wheel.read(m), seasons)
            except (msgspec.DecodeError, EOFError, OSError):
                continue
            plays += p
            credits += c
    parsed = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS bench_raw CASCADE; CREATE SCHEMA bench_raw")
        await conn.execute("SET search_path = bench_raw")
        await conn.execute(RAW_SCHEMA)
        for season in sorted({r[0] for r in plays}):
            for table in ("raw_plays", "raw_participants"):
                await conn.execute(f"CREATE TABLE {table}_{season} PARTITION OF {table} "
                                   f"FOR VALUES FROM ({season}) TO ({season + 1})")  # fmt: skip
        copy_started = time.perf_counter()
        await conn.copy_records_to_table("raw_plays", records=plays)
        await conn.copy_records_to_table("raw_participants", records=credits)
        copied = time.perf_counter()
        await conn.execute("DROP SCHEMA bench_raw CASCADE")
    finally:
        await conn.close()
    return {"plays": len(plays), "credits": len(credits), "parse_s": parsed - started,
            "copy_s": copied - copy_started, "total_s": (parsed - started) + (copied - copy_started)}  # fmt: skip
