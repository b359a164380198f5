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

from shared.events import PlayCorrected, PlayDeleted, PlayEvent, PlayRecorded

HEADER = "X-Snapline-Summary"
MAX_GAMES = 10  # game ids listed per kind of event
MAX_PLAYS = 20  # play ids listed per kind, for corrections and deletes (the ones someone asks about)
MAX_NAMES = 10  # uploaded file names listed per import
MAX_ID = 64  # characters of one id or name
_encoder = msgspec.json.Encoder()
TAGS: dict[type, str] = {
    cls: str(cls.__struct_config__.tag) for cls in (PlayRecorded, PlayCorrected, PlayDeleted)
}


def _clip(value: str) -> str:
    return value if len(value) <= MAX_ID else value[: MAX_ID - 3] + "..."


def events(valid: Iterable[PlayEvent], accepted: int, duplicates: int, rejected: int) -> dict[str, Any]:
    """A POST /v1/events: per kind of event (`play_recorded`, ...) the count, games and play ids."""
    counts: dict[type, int] = {}
    games: dict[type, set[str]] = {}
    plays: dict[type, set[str]] = {}
    for event in valid:
        cls = type(event)
        if cls not in counts:
            counts[cls], games[cls], plays[cls] = 0, set(), set()
        counts[cls] += 1
        games[cls].add(event.game.game_id)
        if isinstance(event, PlayCorrected):
            plays[cls].add(event.play.play_id)
        elif isinstance(event, PlayDeleted):
            plays[cls].add(event.play_id)
    out: dict[str, Any] = {}
    for cls, count in counts.items():
        listed = sorted(games[cls])
        entry: dict[str, Any] = {
            "events": count,
            "games_total": len(listed),
            "games": [_clip(g) for g in listed[:MAX_GAMES]],
        }
        if cls is not PlayRecorded:
            ids = sorted(plays[cls])
            entry["plays_total"] = len(ids)
            entry["plays"] = [_clip(p) for p in ids[:MAX_PLAYS]]
        out[TAGS[cls]] = entry
    return {"kinds": out, "accepted": accepted, "duplicates": duplicates, "rejected": rejected}


def upload(job_id: str, files: int, names: Iterable[str]) -> dict[str, Any]:
    """A POST /v1/imports: the job, how many files it has and the first names uploaded."""
    listed = list(names)
    names_shown = [_clip(n) for n in listed[:MAX_NAMES]]
    return {"job_id": job_id, "files": files, "uploads": len(listed), "names": names_shown}


def header(summary: dict[str, Any]) -> dict[str, str]:
    """The response header carrying `summary`."""
    return {HEADER: base64.urlsafe_b64encode(_encoder.encode(summary)).decode().rstrip("=")}
