"""After `make down`: is any process of this checkout still running? (`.ci/run` checks it.)

A process is ours when its working directory is inside the checkout or its command line names a
path inside it (the services run from the checkout with its venv; Kafka, PostgreSQL and Redis
run with their data and configuration under `.local/`; the CLI's forkserver and workers inherit
the CLI's working directory). This process and its ancestors (the shell that runs CI) are not
counted. Exit status 1, with each process named, when something is left.

    python -m tests.leftovers
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            break
    return pids


def ours() -> list[str]:
    """The processes of this checkout still running, as 'pid: command line'."""
    mine = _ancestors()
    root = str(ROOT)
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state == "Z":
            continue
        inside = cwd == root or cwd.startswith(root + "/") or root + "/" in cmdline
        if inside:
            left.append(f"{entry.name}: {cmdline or '(no command line)'} (cwd {cwd})")
    return left


def main() -> int:
    left = ours()
    if left:
        print(f"{len(left)} process(es) of {ROOT} still running after make down:", file=sys.stderr)
        for line in left:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"no process of {ROOT} is running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
