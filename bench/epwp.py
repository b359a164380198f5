"""EP/WP benchmark: what valuing a play adds to live's path and to a query batch.

Live: every event of one real season goes through services.live.values.LiveValues one at a time,
as the live consumer sees them; each event's cost (window, features, both models) beside the raw
floor measured in the same run: one row predicted by each LightGBM booster, nothing else.
Query: the model's `game_values` over whole games (what the projector runs per touched game),
per play, beside the two boosters predicting the same rows in one call each.

    python bench/epwp.py [--season 2018] [--model .local/models/epwp.json]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.live.messages import views_of
from services.live.values import LiveValues
from shared import epwp
from shared.events import encoder
from snapline_cli.model import DEFAULT_WHEEL, corpus_games


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--season", type=int, default=2018)
    parser.add_argument("--model", default=".local/models/epwp.json")
    parser.add_argument("--corpus", default=DEFAULT_WHEEL)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    from services.ingest import gamecenter as gc
    from snapline_cli.model import _reference
    from snapline_cli.sources import game_files

    model = epwp.Model.load(args.model)
    reference = _reference(args.corpus)
    events = []
    for f in game_files([args.corpus]):
        if not f.name.startswith(str(args.season)):
            continue
        try:
            events += gc.game_events(f.name, f.read(), *reference)
        except gc.GameCenterError:
            continue
    views = views_of(encoder.encode(e) for e in events)
    values = LiveValues(epwp.ModelFile(args.model))
    values.models.refresh()
    live: list[float] = []
    valued = 0
    for view in views:
        started = time.perf_counter()
        extra = values.extras([view])[0]
        live.append(time.perf_counter() - started)
        valued += bool(extra and extra.get("ep_before") is not None)
    ep_row, wp_row = np.zeros((1, len(epwp.EP_FEATURES))), np.zeros((1, len(epwp.WP_FEATURES)))
    raw: list[float] = []
    for _ in range(2000):
        started = time.perf_counter()
        model.expected_points(ep_row)
        model.win_probability(wp_row)
        raw.append(time.perf_counter() - started)
    games = list(corpus_games(args.corpus, {args.season}))
    plays = sum(len(g.plays) for g in games)
    started = time.perf_counter()
    for g in games:
        model.game_values(g.home, g.plays)
    whole = time.perf_counter() - started
    rows = epwp.training_rows(games)
    started = time.perf_counter()
    model.expected_points(rows.ep_x)
    model.win_probability(rows.wp_x)
    raw_whole = time.perf_counter() - started
    print(
        f"\n== EP/WP benchmark ({args.season}: {len(views):,} events, {valued:,} valued; model {model.version})\n"
    )
    print("| figure | p50 ms | p99 ms | max ms | raw floor p50 / p99 ms | ratio p99 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| live: one event through LiveValues | {_pct(live, 50):.3f} | {_pct(live, 99):.3f} | "
          f"{max(live) * 1000:.3f} | {_pct(raw, 50):.3f} / {_pct(raw, 99):.3f} | "
          f"{_pct(live, 99) / _pct(raw, 99):.2f}x |")  # fmt: skip
    print(f"\nquery: game_values over {len(games)} whole games: {whole / plays * 1e6:.1f} µs a play "
          f"({whole:.2f} s); the boosters alone on the same rows in one call: "
          f"{raw_whole / plays * 1e6:.1f} µs a play ({whole / raw_whole:.2f}x); mean {statistics.mean(live) * 1000:.3f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
