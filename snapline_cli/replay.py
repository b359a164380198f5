"""`snapline replay GAME_ID [--speed X]`: a stored game replayed as a live feed through the gateway.

Re-sending the stored events under the same game id would be deduplicated by ingest, so each
stored play is posted again as a new revision-1 `PlayRecorded` of a new game id (`--as`), with
event ids derived from that id (re-running the same `--as` changes nothing), one per request,
paced by the game clock. Viewers follow it at `{gateway}/live/{replay id}`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from shared.events import Game, Play, PlayRecorded, encoder

PAGE_SIZE = 500
MIN_PAUSE, MAX_PAUSE, UNKNOWN_PAUSE = 0.5, 40.0, 2.0
MAX_REPLAY_ID = 64
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_CLOCK = re.compile(r"(\d{1,2}):([0-5]\d)", re.ASCII)
_PLAY_FIELDS = tuple(name for name in Play.__struct_fields__ if name != "play_id")
_GAME_FIELDS = ("season", "season_type", "week", "home", "away")
Stored = dict[str, Any]


class ReplayFailed(Exception):
    """The replay cannot go on; the message says why."""


@dataclass
class Progress:
    """How far a replay got, kept outside the event loop so Ctrl-C can report it."""

    source_id: str
    replay_id: str
    total: int = 0
    posted: int = 0
    duplicates: int = 0

    def summary(self, elapsed: float) -> str:
        """One line: what was replayed, as what, how long it took."""
        return (f"replayed {self.posted} of {self.total} plays of {self.source_id} as {self.replay_id} "
                f"in {elapsed:.1f} s ({self.duplicates} already there)")  # fmt: skip


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser("replay", help="replay a stored game as a live feed")
    r.add_argument("game_id", metavar="GAME_ID", help="the stored game to replay")
    r.add_argument("--speed", type=positive_speed, default=1.0, help="pace factor (2 = twice as fast)")
    r.add_argument("--as", dest="replay_id", metavar="NEW_GAME_ID",
                   help="game id of the replay (default GAME_ID-replay-<UTC time>)")  # fmt: skip
    r.add_argument("--gateway", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"))
    r.add_argument("--api-key", default=os.environ.get("SNAPLINE_API_KEY"), help="role feed or admin")
    r.set_defaults(run=run)


def positive_speed(text: str) -> float:
    """The --speed value: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text}")
    return value


def default_replay_id(game_id: str, now: datetime) -> str:
    """The replay's game id when --as is not given: `<game>-replay-<UTC time, compact>`."""
    return f"{game_id}-replay-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def replay_id_problem(game_id: str, replay_id: str) -> str | None:
    """Why `replay_id` cannot name the replay of `game_id`, or None."""
    if replay_id == game_id:
        return f"--as must differ from {game_id!r}: ingest would take the plays as duplicates"
    if not replay_id or len(replay_id) > MAX_REPLAY_ID or any(c.isspace() or c in "/," for c in replay_id):
        return f"--as {replay_id!r} is not a game id (1-{MAX_REPLAY_ID} characters, no spaces, '/' or ',')"
    return None


def clock_seconds(clock: str | None) -> int | None:
    """Seconds left on a "MM:SS" game clock; None when absent or malformed."""
    match = _CLOCK.fullmatch(clock or "")
    return int(match[1]) * 60 + int(match[2]) if match else None


def pause(previous: Stored | None, play: Stored, speed: float = 1.0) -> float:
    """Seconds to wait before `play`: game clock run since `previous` in its quarter, clamped, over speed."""
    if previous is None:
        return 0.0
    before, after = clock_seconds(previous.get("clock")), clock_seconds(play.get("clock"))
    if before is None or after is None or previous.get("quarter") != play.get("quarter"):
        return UNKNOWN_PAUSE / speed
    return min(max(before - after, MIN_PAUSE), MAX_PAUSE) / speed


def feed_play_id(stored: Stored) -> str:
    """The feed's own play id: the API's `<game_id>:<feed play id>` without the game."""
    return str(stored["play_id"]).removeprefix(f"{stored['game_id']}:")


def replay_game(stored_game: Stored, replay_id: str) -> Game:
    """The stored game (season, type, week, teams) under the replay's id."""
    return msgspec.convert({**{k: stored_game[k] for k in _GAME_FIELDS}, "game_id": replay_id}, Game)


def rebuild(stored: Stored, game: Game, occurred_at: datetime) -> PlayRecorded:
    """A stored play (API shape) as a revision-1 event of `game`; raises msgspec.ValidationError."""
    fields = {name: stored[name] for name in _PLAY_FIELDS if stored.get(name) is not None}
    play = msgspec.convert({**fields, "play_id": feed_play_id(stored)}, Play)
    return PlayRecorded(event_id=f"replay-{game.game_id}-{play.play_id}-1", occurred_at=occurred_at,
                        game=game, play=play, revision=1, source="replay")  # fmt: skip


def describe(seq: int, stored: Stored) -> str:
    """One line for a play: replay seq, quarter, clock, description."""
    return f"{seq:>4}  Q{stored.get('quarter')} {stored.get('clock') or '--:--':>5}  {stored.get('description') or ''}"


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None


def _error(status: int, payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f"HTTP {status}: {message or 'no error message'}"


def _retry_after(resp: aiohttp.ClientResponse, delay: float) -> float:
    try:
        return max(delay, float(resp.headers.get("Retry-After", delay)))
    except ValueError:
        return delay


async def call(session: aiohttp.ClientSession, method: str, url: str, attempts: int = 8,
               **kw: Any) -> tuple[int, Any]:  # fmt: skip
    """One request, retried on 429/502/503/504 (honouring Retry-After) or no answer: (status, JSON)."""
    delay, message = 0.5, ""
    for attempt in range(1, attempts + 1):
        try:
            async with session.request(method, url, **kw) as resp:
                payload = await _json(resp)
                if resp.status not in RETRY_STATUSES:
                    return resp.status, payload
                message, delay = _error(resp.status, payload), _retry_after(resp, delay)
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"cannot reach the gateway at {url} ({exc or type(exc).__name__})"
        if attempt < attempts:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise ReplayFailed(f"gave up after {attempts} attempts: {message}")


async def load_game(session: aiohttp.ClientSession, base: str, game_id: str) -> Stored:
    """GET /v1/games/{id}; ReplayFailed naming the game when there is none."""
    status, payload = await call(session, "GET", f"{base}/v1/games/{quote(game_id, safe='')}")
    if status == 404:
        raise ReplayFailed(f"there is no stored game with id {game_id!r}.")
    if status != 200:
        raise ReplayFailed(f"cannot read game {game_id!r}: {_error(status, payload)}")
    return payload  # type: ignore[no-any-return]


async def load_plays(session: aiohttp.ClientSession, base: str, game_id: str) -> list[Stored]:
    """Every stored play of the game in play order, page by page."""
    plays: list[Stored] = []
    params = {"game_id": game_id, "sort": "oldest", "limit": str(PAGE_SIZE)}
    while True:
        status, payload = await call(session, "GET", f"{base}/v1/plays", params=params)
        if status != 200:
            raise ReplayFailed(f"cannot read the plays of {game_id!r}: {_error(status, payload)}")
        plays.extend(payload["items"])
        if not payload.get("next_cursor"):
            return plays
        params["cursor"] = payload["next_cursor"]


async def post_event(session: aiohttp.ClientSession, base: str, event: PlayRecorded) -> bool:
    """POST one event; True when it is new, False when the platform already had it."""
    headers = {"Content-Type": "application/json"}
    status, payload = await call(session, "POST", f"{base}/v1/events", data=encoder.encode(event),
                                 headers=headers)  # fmt: skip
    if status != 202:
        raise ReplayFailed(_error(status, payload))
    if payload.get("rejected"):
        raise ReplayFailed(f"rejected: {payload['rejected'][0].get('errors')}")
    return bool(payload.get("accepted"))


async def feed(session: aiohttp.ClientSession, base: str, game: Game, plays: list[Stored],
               speed: float, progress: Progress) -> None:  # fmt: skip
    """Post the plays one by one on the game clock's pace; stop at the first failure, naming it."""
    due, previous, terminal = time.monotonic(), None, sys.stdout.isatty()
    for seq, stored in enumerate(plays, 1):
        due += pause(previous, stored, speed)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            new = await post_event(session, base, rebuild(stored, game, datetime.now(UTC)))
        except (ReplayFailed, msgspec.ValidationError) as exc:
            raise ReplayFailed(f"play {seq} of {len(plays)} ({stored.get('play_id')}: "
                               f"{describe(seq, stored).strip()}) failed: {exc}") from exc  # fmt: skip
        progress.posted += 1
        progress.duplicates += not new
        if terminal:
            print(describe(seq, stored) + ("" if new else "  (already there)"), flush=True)
        previous = stored


async def replay(args: argparse.Namespace, progress: Progress) -> None:
    """Read the stored game through the gateway, announce the replay, then feed it."""
    base = args.gateway.rstrip("/")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        stored_game = await load_game(session, base, args.game_id)
        plays = await load_plays(session, base, args.game_id)
        if not plays:
            raise ReplayFailed(f"the stored game {args.game_id!r} has no plays to replay.")
        game = replay_game(stored_game, progress.replay_id)
        progress.total = len(plays)
        print(f"replaying {args.game_id} ({len(plays)} plays, speed {args.speed:g}) as {progress.replay_id}")
        print(f"watch it at {base}/live/{quote(progress.replay_id, safe='')}", flush=True)
        await feed(session, base, game, plays, args.speed, progress)


def _say(message: str) -> None:
    print(f"snapline replay: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    replay_id = args.replay_id
    if replay_id is None:
        replay_id = default_replay_id(args.game_id, datetime.now(UTC))
    if problem := replay_id_problem(args.game_id, replay_id):
        _say(problem)
        return 2
    progress, started = Progress(args.game_id, replay_id), time.monotonic()
    try:
        asyncio.run(replay(args, progress))
    except KeyboardInterrupt:
        _say(f"interrupted; {progress.summary(time.monotonic() - started)}")
        return 130
    except ReplayFailed as exc:
        _say(str(exc))
        if not args.api_key and "HTTP 401" in str(exc):
            _say("set SNAPLINE_API_KEY or pass --api-key")
        if progress.total:
            _say(f"stopped; {progress.summary(time.monotonic() - started)}")
        return 1
    print(progress.summary(time.monotonic() - started))
    return 0
