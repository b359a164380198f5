"""The /live/{game_id} game center in headless Chromium while `snapline replay` plays a real game
through the suite's stack, with the live service killed and restarted mid-game: the page reconnects,
resumes, and ends with every play exactly once and the file's final score.

SNAPLINE_SCREENSHOT=path saves a screenshot of the finished page there (docs/images/live-game-center.png).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import pytest

from bench.stack import BenchStack
from services.gateway.accounts import create_user
from services.ingest import convert
from services.ingest import gamecenter as gc
from services.ingest.options import ImportOptions
from snapline_cli.main import main
from tests.factories import event_dict
from tests.stack import GATEWAY, eventually, remove_game

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

REAL = Path(ImportOptions.from_env().data_wheel)  # .local/data/, or $SNAPLINE_DATA_WHEEL
SOURCE = "2019090800"  # LA at CAR, 2019 week 1: the sample game `make up` loads
SEASON = 2033  # the copy's season: no other test stores one, so its totals can be removed
SPEED = 200  # the game clock 200 times faster: about 25 s for the whole game
WAIT_MS = 120_000  # page conditions; a restarted live waits out its dead member's Kafka session (30 s)

ROWS = "document.querySelectorAll('#plays li[data-play-id]').length"


def real_game() -> tuple[bytes, dict[str, Any]]:
    """The source game's file as shipped, and its decoded game object."""
    if not REAL.is_file():
        pytest.fail(f"{REAL} is missing: `make test` downloads it (make data)")
    with zipfile.ZipFile(REAL) as wheel:
        data = wheel.read(f"nflgame/gamecenter-json/{SOURCE}.json.gz")
    doc: dict[str, Any] = json.loads(gzip.decompress(data))[SOURCE]
    return data, doc


def copy_wheel(tmp_path: Path, game_id: str) -> Path:
    """A wheel holding the real game under `game_id` (season SEASON), with the schedule and players."""
    _, doc = real_game()
    with zipfile.ZipFile(REAL) as real:
        players = real.read("nflgame/players.json")
    schedule = {"games": [[game_id, {"home": doc["home"]["abbr"], "away": doc["away"]["abbr"], "year": SEASON,
                                     "month": 9, "day": 8, "week": 1, "season_type": "REG"}]]}  # fmt: skip
    path = tmp_path / "game.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("nflgame/schedule.json", json.dumps(schedule))
        wheel.writestr("nflgame/players.json", players)
        wheel.writestr(f"nflgame/gamecenter-json/{game_id}.json.gz",
                       gzip.compress(json.dumps({game_id: doc}).encode()))  # fmt: skip
    return path


@pytest.fixture
async def game_ids(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[tuple[str, str]]:
    """The stored copy's id (date-shaped, like GameCenter's) and its replay's; both removed afterwards."""
    n = int(unique, 16)
    source = f"{SEASON}09{n % 28 + 1:02d}{n // 28 % 100:02d}"
    yield source, f"{source}-replay"
    await remove_game(stack_db, source)
    await remove_game(stack_db, f"{source}-replay")
    await stack_db.execute("DELETE FROM stat_totals WHERE season = $1", SEASON)


@pytest.fixture
async def viewer_token(stack_db: asyncpg.Pool, unique: str) -> AsyncIterator[str]:
    """An access token of a viewer of this test's own: what a person opening the page has."""
    username, password = f"t-{unique}-page", uuid.uuid4().hex
    await create_user(stack_db, username, password, "viewer")
    try:
        async with aiohttp.ClientSession(GATEWAY) as http:
            resp = await http.post("/v1/auth/token", json={"username": username, "password": password})
            assert resp.status == 200, await resp.text()
            token: str = (await resp.json())["access_token"]
        yield token
    finally:
        await stack_db.execute("DELETE FROM gateway_users WHERE username = $1", username)


async def stored_plays(http: aiohttp.ClientSession, game_id: str) -> list[dict[str, Any]]:
    """Every play of a game from GET /v1/plays, oldest first."""
    items: list[dict[str, Any]] = []
    params = {"game_id": game_id, "sort": "oldest", "limit": "500"}
    while True:
        resp = await http.get("/v1/plays", params=params)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


async def all_stored(http: aiohttp.ClientSession, game_id: str, count: int) -> list[dict[str, Any]]:
    async def complete() -> list[dict[str, Any]] | None:
        items = await stored_plays(http, game_id)
        return items if len(items) == count else None

    return await eventually(complete, timeout=60)  # type: ignore[no-any-return]


def scoring_ids(plays: list[dict[str, Any]]) -> list[str]:
    """The plays the page must mark: touchdowns and plays after which the score changed."""
    marked, before = [], None
    for p in plays:
        now = (p["home_score"], p["away_score"]) if p.get("home_score") is not None else before
        if p["touchdown"] or (before is not None and now != before):
            marked.append(p["play_id"])
        before = now
    return marked


async def page_rows(page: Page) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await page.eval_on_selector_all(
        "#plays li[data-play-id]",
        "els => els.map(e => ({id: e.dataset.playId, deleted: e.classList.contains('deleted'),"
        " scoring: e.classList.contains('scoring')}))",
    )
    return rows


async def text(page: Page, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


@pytest.mark.integration
async def test_the_game_center_follows_a_replay_through_a_live_restart(
    stack: BenchStack,
    stack_keys: dict[str, str],
    game_ids: tuple[str, str],
    viewer_token: str,
    browser: Browser,
    tmp_path: Path,
) -> None:
    source, target = game_ids
    data, doc = real_game()
    expected = len(gc.game_events(f"{SOURCE}.json.gz", data, *convert.reference(str(REAL))))
    feed = stack_keys["feed"]
    imported = ["import", "gamecenter", str(copy_wheel(tmp_path, source)), "--gateway", GATEWAY,
                "--api-key", feed, "--workers", "1"]  # fmt: skip
    assert await asyncio.to_thread(main, imported) == 0
    async with aiohttp.ClientSession(GATEWAY, headers={"X-API-Key": stack_keys["viewer"]}) as http:
        await all_stored(http, source, expected)

        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{GATEWAY}/live/{target}?access_token={viewer_token}")
        # The replay's game has not started: the page is told so and keeps following it.
        await page.wait_for_function("document.body.dataset.reloads === '1'", timeout=WAIT_MS)

        replay = ["replay", source, "--as", target, "--speed", str(SPEED), "--gateway", GATEWAY,
                  "--api-key", feed]  # fmt: skip
        replaying = asyncio.create_task(asyncio.to_thread(main, replay))
        await page.wait_for_function(f"{ROWS} >= {expected // 3}", timeout=WAIT_MS)
        mid_game = not replaying.done()
        stack.kill("live")  # as a crash would: the page's socket drops mid-game
        await page.wait_for_function("document.body.dataset.connection === 'down'", timeout=WAIT_MS)
        await stack.restart("live")
        await page.wait_for_function("document.body.dataset.connects === '2'", timeout=WAIT_MS)
        assert mid_game, "the replay ended before live was killed: lower SPEED"
        assert await replaying == 0

        final = f"{ROWS} === {expected} && document.getElementById('status').dataset.status === 'final'"
        try:
            await page.wait_for_function(final, timeout=WAIT_MS)
        finally:
            if shot := os.environ.get("SNAPLINE_SCREENSHOT"):
                await page.screenshot(path=shot)
        plays = await all_stored(http, target, expected)

    assert not errors, errors
    rows = await page_rows(page)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == expected  # every play exactly once
    assert ids == [p["play_id"] for p in reversed(plays)]  # newest first
    assert not [r["id"] for r in rows if r["deleted"]]
    assert [r["id"] for r in reversed(rows) if r["scoring"]] == scoring_ids(plays)
    home, away = doc["home"], doc["away"]
    assert (await text(page, "#home-team"), await text(page, "#away-team")) == (home["abbr"], away["abbr"])
    # The file's final score (27-30 for CAR-LA), from the score the feed carries on each play.
    final_score = (str(home["score"]["T"]), str(away["score"]["T"]))
    assert (await text(page, "#home-score"), await text(page, "#away-score")) == final_score
    assert await text(page, "#status") == "final"

    # The imported game is history: the stream has none of it, the page loads it from the query API.
    stored = await browser.new_page()
    await stored.goto(f"{GATEWAY}/live/{source}?access_token={viewer_token}")
    await stored.wait_for_function(final, timeout=WAIT_MS)
    assert len({r["id"] for r in await page_rows(stored)}) == expected
    assert await text(stored, "#home-team") == home["abbr"]
    assert (await text(stored, "#home-score"), await text(stored, "#away-score")) == final_score


def feed_event(
    game_id: str, n: int, kind: str = "play_recorded", revision: int = 1, **play: Any
) -> dict[str, Any]:
    """Play `n` of a small feed game (season SEASON; no players, so no player totals)."""
    fields = {"sequence": n, "play_type": "run", "yards_gained": 4, "description": f"play {n}",
              "participants": [], "stats": [], **play}  # fmt: skip
    event = event_dict(game_id=game_id, play_id=str(n), **fields)
    event["game"]["season"] = SEASON
    event.update(type=kind, event_id=f"ev-{game_id}-{n}-{revision}", revision=revision)
    if kind == "play_deleted":
        event["play_id"] = str(event.pop("play")["play_id"])
    return event


@pytest.mark.integration
async def test_corrections_replace_and_deletes_strike_through(
    stack_keys: dict[str, str], game_ids: tuple[str, str], viewer_token: str, browser: Browser
) -> None:
    game_id, _ = game_ids
    page = await browser.new_page()
    await page.goto(f"{GATEWAY}/live/{game_id}?access_token={viewer_token}")
    await page.wait_for_function("document.body.dataset.reloads === '1'", timeout=WAIT_MS)
    first = [
        feed_event(game_id, 1),  # a feed that sends no score: plays show, the score waits
        feed_event(game_id, 2, touchdown=True, home_score=6, away_score=0, game_status="in_progress"),
        feed_event(game_id, 3, home_score=6, away_score=0, game_status="in_progress"),
    ]
    then = [
        feed_event(
            game_id, 3, "play_corrected", 2, home_score=7, away_score=0, description="play 3, corrected"
        ),
        feed_event(game_id, 1, "play_deleted", 2),
    ]
    async with aiohttp.ClientSession(GATEWAY, headers={"X-API-Key": stack_keys["feed"]}) as http:
        for batch in (first, then):
            resp = await http.post("/v1/events", json=batch)
            assert resp.status == 202 and (await resp.json())["accepted"] == len(batch), await resp.text()
            if batch is first:
                await page.wait_for_function(f"{ROWS} === 3", timeout=WAIT_MS)

    done = "document.querySelector('li.deleted') && document.getElementById('home-score').textContent === '7'"
    await page.wait_for_function(done, timeout=WAIT_MS)
    # A viewer opening the page now gets the same from the stream's history (resume from 0).
    late = await browser.new_page()
    await late.goto(f"{GATEWAY}/live/{game_id}?access_token={viewer_token}")
    await late.wait_for_function(done, timeout=WAIT_MS)
    for viewer in (page, late):
        rows = await page_rows(viewer)
        assert [r["id"] for r in rows] == [f"{game_id}:{n}" for n in (3, 2, 1)]
        assert [r["deleted"] for r in rows] == [False, False, True]
        assert [r["scoring"] for r in rows] == [True, True, False]  # the touchdown, then the point after
        assert await text(viewer, f"li[data-play-id='{game_id}:3'] .desc") == "play 3, corrected"
        assert (await text(viewer, "#home-score"), await text(viewer, "#away-score")) == ("7", "0")
