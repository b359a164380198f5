"""`snapline rebuild query|analytics`: a service's tables replayed from the plays topic and swapped in.

Runs in the CLI process, with the service's own settings (DATABASE_URL, KAFKA_*, REDIS_URL,
<SERVICE>_CONSUMER_GROUP) and the service's own apply code (shared.rebuild says how). The
service keeps serving and consuming meanwhile; its writers pause only for the swap.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.config import Settings
from shared.rebuild import RebuildError, Report, Target, rebuild

HELP = """\
Replays the plays topic from offset 0 into a shadow schema through the service's own code, in a
consumer group of its own (<group>-rebuild-<UTC time>, deleted at the end), up to the end offsets
seen at start and then, holding the service's swap lock, to the end offsets at swap time; swaps
the shadow tables in and prints each table's rows and digest and one checksum over them all.
query: plays, games. analytics: analytics_play_contrib, stat_totals, defender_plays, players.
Reads the service's environment: DATABASE_URL, KAFKA_BOOTSTRAP, KAFKA_TOPIC_PREFIX, REDIS_URL and
QUERY_CONSUMER_GROUP / ANALYTICS_CONSUMER_GROUP."""


def _targets() -> dict[str, Target]:
    from services.analytics.rebuild import TARGET as ANALYTICS
    from services.query.rebuild import TARGET as QUERY

    return {"query": QUERY, "analytics": ANALYTICS}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser(
        "rebuild", help="rebuild a service's tables from the plays topic and swap them in",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    r.add_argument("service", choices=("query", "analytics"), help="whose tables to rebuild")
    r.set_defaults(run=run)


def lines(report: Report) -> list[str]:
    """The command's output: a line per table, the summary, the checksum last."""
    out = [f"{table:<24} {rows:>9} rows  {digest}" for table, (rows, digest) in report.tables.items()]
    offsets = " ".join(f"{p}:{o}" for p, o in sorted(report.end_offsets.items()))
    out.append(f"replayed {report.records} records ({report.skipped} skipped) in {report.rounds} rounds, "
               f"{report.seconds:.1f} s, writers paused {report.locked_seconds * 1000:.0f} ms; "
               f"swapped in at offsets {offsets}; group {report.group} deleted")  # fmt: skip
    out.append(f"checksum {report.checksum}")
    return out


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(args.service)
    try:
        report = asyncio.run(rebuild(settings, _targets()[args.service]))
    except RebuildError as exc:
        print(f"rebuild of {args.service} failed, nothing swapped in: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines(report)))
    return 0
