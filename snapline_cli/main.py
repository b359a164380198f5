"""`snapline COMMAND ...`: one module per command, each adding its own subparser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from shared.config import Settings
from shared.logging import setup as setup_logging
from snapline_cli import apikeys, archive, audit, imports, model, rebuild, replay, users

# name -> function adding that command's parser; each sets `run(args) -> exit code` as a default.
# `import` and `replay` join here, each from its own module.
COMMANDS: dict[str, Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = {
    "user": users.register,
    "key": apikeys.register,
    "audit": audit.register,
    "import": imports.register,
    "replay": replay.register,
    "rebuild": rebuild.register,
    "model": model.register,
    "archive": archive.register,  # archive and restore
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snapline", description="Snapline's command line.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS.values():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (0 on success)."""
    args = build_parser().parse_args(argv)
    settings = Settings.from_env("cli")
    # Logs go to stderr, keeping stdout for what a script captures (an API key, say).
    setup_logging("cli", settings.log_level, settings.log_json)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
