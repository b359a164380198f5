"""`snapline archive SEASON | --policy [--dry-run]` and `snapline restore SEASON` (shared/lifecycle.py).

Run in the CLI process directly against each owning service's database (its DATABASE_URL), as
`snapline rebuild` is: an archive of a season outlasts any HTTP timeout, and its safety is the
PostgreSQL lock each service's writers already honour, which holds for every instance.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from shared.config import Settings

if TYPE_CHECKING:  # imported when a command runs: pyarrow is not every command's cost
    from shared.lifecycle import Outcome, Target

ARCHIVE_HELP = """\
Exports a season's rows of every per-season table (query: plays, games, player_teams; analytics:
analytics_play_contrib, stat_totals, defender_plays, analytics_plays, analytics_games) to
zstd-compressed Parquet under ARCHIVE_URL/<season>/ with a manifest.json (rows, SHA-256, bytes,
schema versions), reads every file back and checks its rows and checksum, then detaches and drops
the season's partitions and deletes its other rows, one transaction per service. Reads of the
season then answer 410 season_archived naming `snapline restore SEASON`.
The policy keeps the newest ARCHIVE_KEEP_SEASONS seasons of the data active (3: the current season
and the two before it); --policy archives the older ones, --policy --dry-run only lists them.
Reads DATABASE_URL, ARCHIVE_URL, ARCHIVE_KEEP_SEASONS, ARCHIVE_BATCH_ROWS, ARCHIVE_S3_ENDPOINT,
ARCHIVE_S3_REGION."""
RESTORE_HELP = """\
Loads an archived season back from where it was archived: re-creates its partitions, COPYs the
Parquet files in, checks every table's rows and SHA-256 against the manifest (a mismatch restores
nothing) and makes the season readable again. The files stay in cold storage."""


def _targets() -> list[Target]:
    from services.analytics.archive import OWNER as ANALYTICS
    from services.query.archive import OWNER as QUERY
    from shared.lifecycle import Target

    return [Target(QUERY, Settings.from_env("query").database_url),
            Target(ANALYTICS, Settings.from_env("analytics").database_url)]  # fmt: skip


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = subparsers.add_parser(
        "archive", help="move a season's rows to cold storage (Parquet) and drop them",
        description=ARCHIVE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    a.add_argument("season", nargs="?", type=int, help="the season to archive (e.g. 2009)")
    a.add_argument("--policy", action="store_true", help="archive every season the policy no longer keeps")
    a.add_argument("--dry-run", action="store_true", help="with --policy: list the seasons, archive none")
    a.add_argument("--force", action="store_true", help="archive SEASON even if the policy keeps it active")
    a.set_defaults(run=run_archive, parser=a)
    r = subparsers.add_parser(
        "restore", help="bring an archived season back from cold storage",
        description=RESTORE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    r.add_argument("season", type=int, help="the archived season")
    r.set_defaults(run=run_restore)


def lines(verb: str, outcome: Outcome) -> list[str]:
    """A line per table (rows, Parquet bytes, SHA-256), the summary, the checksum last."""
    out = [
        f"{table:<24} {f.rows:>9} rows {f.bytes:>11} bytes  {f.sha256}" for table, f in outcome.tables.items()
    ]
    out.append(f"{verb} season {outcome.season} ({', '.join(outcome.owners)}) {'to' if verb == 'archived' else 'from'} "
               f"{outcome.where} in {outcome.seconds:.1f} s")  # fmt: skip
    out.append(f"checksum {outcome.checksum}")
    return out


def _failures() -> tuple[type[BaseException], ...]:
    """What a run reports in a sentence: refusals, and storage or database failures (never a traceback)."""
    import asyncpg
    import msgspec

    from shared.archive import ArchiveError
    from shared.coldstore import ColdStoreError

    # OSError: pyarrow's I/O errors (a directory not writable, S3 refusing) and connections refused.
    return (ArchiveError, ColdStoreError, OSError, asyncpg.PostgresError, msgspec.DecodeError)


def run_archive(args: argparse.Namespace) -> int:
    from shared.lifecycle import survey

    settings = Settings.from_env("cli")
    if args.policy == (args.season is not None):
        args.parser.error("give a SEASON or --policy (one of them)")
    if args.dry_run and not args.policy:
        args.parser.error("--dry-run goes with --policy")
    try:
        if not args.policy:
            print("\n".join(lines("archived", asyncio.run(_archive(settings, args.season, args.force)))))
            return 0
        state = asyncio.run(survey(settings, _targets()))
        due, kept = state.to_archive(), state.kept()
        print(f"policy: the newest {settings.archive_keep_seasons} seasons stay active "
              f"({', '.join(map(str, kept)) or 'none'}); to archive: {', '.join(map(str, due)) or 'none'}")  # fmt: skip
        for season in sorted(s for s in state.known if state.fully_archived(s)):
            where = next(iter(state.archived.values()))[season]
            print(f"archived: {season} in {where.rstrip('/')}/{season}/")
        for season in [] if args.dry_run else due:
            print("\n".join(lines("archived", asyncio.run(_archive(settings, season, False)))))
    except _failures() as exc:
        print(f"archive failed: {exc}", file=sys.stderr)
        return 1
    return 0


async def _archive(settings: Settings, season: int, force: bool) -> Outcome:
    from shared.lifecycle import archive_season

    return await archive_season(settings, _targets(), season, force)


def run_restore(args: argparse.Namespace) -> int:
    from shared.lifecycle import restore_season

    settings = Settings.from_env("cli")
    try:
        outcome = asyncio.run(restore_season(settings, _targets(), args.season))
    except _failures() as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines("restored", outcome)))
    return 0
