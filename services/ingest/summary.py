"""What one request changed, in a few hundred bytes, for the gateway's audit log.

Ingest answers a write with the internal header `X-Snapline-Summary`: base64url of a JSON object
(base64, so a game or file name in any script survives an HTTP header). The gateway reads it,
records it beside who asked, and never relays it (its proxy passes only an allow-list of
headers). Lists are cut at a fixed length and each id at a fixed size, so a request of thousands
of events still makes a small header; the counts stay exact.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import msgspec

from shared.events import PlayDeleted, PlayEvent

HEADER = "X-Snapline-Summary"
MAX_GAMES = 10  # game ids listed per kind of event
MAX_PLAYS = 20  # play ids listed per kind, for corrections and deletes (the ones someone asks about)
MAX_NAMES = 10  # uploaded file names listed per import
MAX_ID = 64  # characters of one id or name
_encoder = msgspec.json.Encoder()


def _clip(value: str) -> str:
    return value if len(value) <= MAX_ID else value[: MAX_ID - 3] + "..."


def events(valid: Iterable[PlayEvent], accepted: int, duplicates: int, rejected: int) -> dict[str, Any]:
    """A POST /v1/events: per kind of event (`play_recorded`, ...) the count, games and play ids."""
    kinds: dict[str, dict[str, Any]] = {}
    for event in valid:
        tag = type(event).__struct_config__.tag
        kind = kinds.get(str(tag))
        if kind is None:
            kind = kinds[str(tag)] = {"events": 0, "games": set(), "plays": set()}
        kind["events"] += 1
        kind["games"].add(event.game.game_id)
        if tag != "play_recorded":
            kind["plays"].add(event.play_id if isinstance(event, PlayDeleted) else event.play.play_id)
    out: dict[str, Any] = {}
    for tag, kind in kinds.items():
        games = sorted(kind["games"])
        plays = sorted(kind["plays"])
        entry = {
            "events": kind["events"],
            "games_total": len(games),
            "games": [_clip(g) for g in games[:MAX_GAMES]],
        }
        if tag != "play_recorded":
            entry["plays_total"] = len(plays)
            entry["plays"] = [_clip(p) for p in plays[:MAX_PLAYS]]
        out[tag] = entry
    return {"kinds": out, "accepted": accepted, "duplicates": duplicates, "rejected": rejected}


def upload(job_id: str, files: int, names: Iterable[str]) -> dict[str, Any]:
    """A POST /v1/imports: the job, how many files it has and the first names uploaded."""
    listed = list(names)
    names_shown = [_clip(n) for n in listed[:MAX_NAMES]]
    return {"job_id": job_id, "files": files, "uploads": len(listed), "names": names_shown}


def header(summary: dict[str, Any]) -> dict[str, str]:
    """The response header carrying `summary`."""
    return {HEADER: base64.urlsafe_b64encode(_encoder.encode(summary)).decode().rstrip("=")}
