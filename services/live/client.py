"""One WebSocket client: a bounded outbox drained in order by a writer task that runs only while it holds something.

An idle viewer (most of them, most of the time: between plays, or before subscribing) holds no
task, no queue and no timer of its own here; the outbox and its writer exist while there is
something to send (measured: about 4.5 KB per idle connection less than an asyncio.Queue and a
writer task kept for the socket's life).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from services.live.messages import reload
from services.live.metrics import MESSAGES_SENT, RELOADS, REPLAYED
from shared.logging import get_logger
from shared.tasks import stop_task

log = get_logger(__name__)
History = Callable[[str, int, int | None], Awaitable[list[tuple[int, str]]]]
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Live:
    """A sequenced message as published; `text` and its WebSocket `frame` are shared by every client."""

    game_id: str
    seq: int
    text: str
    frame: bytes = b""


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive messages of one game (seqs `first`, `first` + 1, ...) that arrived together (a play
    and the `score` and `game_state` it moved): an up-to-date socket takes their frames in one write."""

    game_id: str
    first: int
    count: int
    frames: bytes


def text_frame(text: str) -> bytes:
    """An unmasked, uncompressed, final WebSocket text frame (RFC 6455 5.2), built once per message."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


# A client whose socket holds this much unsent goes through its outbox and writer (which waits for
# the socket to drain) instead of being written to directly.
DIRECT_WRITE_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Sync:
    """Start (or restart) a game after `after_seq`, or catch up from the last sent seq when None."""

    game_id: str
    after_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Stop sending a game."""

    game_id: str


@dataclass(frozen=True, slots=True)
class Ping:
    """A WebSocket ping (its pong tells that the viewer is still there)."""


PING = Ping()
PING_FRAME = b"\x89\x00"  # an unmasked, empty, final ping frame (RFC 6455 5.5.2)
Outgoing = Live | Sync | Drop | Ping | str  # a str is an unsequenced message sent as is


class Client:
    """A connected client; only its writer task touches the per-game last seq."""

    __slots__ = ("_broken", "_history", "_last", "_limit", "_outbox", "_socket", "_transport", "_writer", "games",
                 "id", "peer", "seen", "sent", "ws")  # fmt: skip

    def __init__(
        self, ws: web.WebSocketResponse, history: History, queue_size: int, peer: str,
        transport: asyncio.Transport | None = None, socket: asyncio.Transport | None = None,
    ) -> None:  # fmt: skip
        self.id = next(_ids)
        self.ws = ws
        # The socket's transport when messages may be written to it directly (no compression).
        self._transport = transport
        self._socket = socket if socket is not None else transport  # to abort a viewer that went silent
        # When the viewer last sent a frame (a pong, an op; loop time): the keep-alive's evidence.
        self.seen = asyncio.get_running_loop().time()
        self.peer = peer
        self.games: set[str] = set()
        self.sent = 0
        self._history = history
        self._limit = queue_size
        self._last: dict[str, int] = {}
        self._outbox: deque[Outgoing] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._broken = False  # the socket failed a write: the receive side is cleaning up

    def __repr__(self) -> str:
        return f"Client(id={self.id}, peer={self.peer!r}, games={len(self.games)}, queued={self.depth})"

    @property
    def depth(self) -> int:
        """Items waiting to be written."""
        return len(self._outbox) if self._outbox is not None else 0

    def write_now(self, item: Live) -> bool:
        """Write the next message of a game straight to the socket, when nothing is queued before it,
        the socket is not behind and the message is the one after the last sent: the common case of
        a fan-out, without a writer task or a frame built per client. False: offer it instead."""
        if self._last.get(item.game_id, -1) + 1 != item.seq or not self.write_frame_now(item.frame):
            return False
        self._last[item.game_id] = item.seq
        return True

    def write_run_now(self, run: Run) -> bool:
        """Write a run of a game's consecutive messages as one write (their frames joined), when the
        run starts right after the last sent and the socket takes direct writes. False: offer them."""
        if self._last.get(run.game_id, -1) + 1 != run.first:
            return False
        if not self.write_frame_now(run.frames, run.count):
            return False
        self._last[run.game_id] = run.first + run.count - 1
        return True

    def write_frame_now(self, frame: bytes, count: int = 1) -> bool:
        """Write pre-built frames (`count` messages) straight to the socket when nothing is queued
        before them and the socket is not behind; False: offer the messages instead."""
        transport = self._transport
        if (
            transport is None
            or self._outbox is not None
            or transport.is_closing()
            or transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT
            or self.ws.closed
        ):
            return False
        transport.write(frame)
        self.sent += count
        return True

    def offer(self, item: Outgoing) -> bool:
        """Queue an item without waiting, starting the writer if it is not running; False when full."""
        if self._broken:
            return True  # nothing more reaches a dead socket; its receive loop is ending
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        elif len(outbox) >= self._limit:
            return False
        outbox.append(item)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name=f"live-client-{self.id}")
        return True

    def abort(self) -> None:
        """Drop the connection at once (a viewer that stopped answering pings: no close handshake
        to wait for); its receive loop then ends and cleans up."""
        if self._socket is not None:
            self._socket.abort()

    async def stop(self) -> None:
        """Cancel the writer, if one runs, and wait for it."""
        writer = self._writer
        if writer is not None:
            await stop_task(writer, "live-client-writer", seconds=5.0)

    async def finish(self, code: int, reason: str, seconds: float = 5.0) -> None:
        """Write what is queued (for up to `seconds`), then close the socket with `code`."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), seconds)
        await self.close(code, reason)

    async def close(self, code: int, reason: str) -> None:
        """Stop writing and close the socket with `code`."""
        await self.stop()
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode())

    async def _write_loop(self) -> None:
        outbox = self._outbox
        assert outbox is not None
        try:
            while outbox:
                await self._write(outbox.popleft())
        except asyncio.CancelledError:
            raise
        except (ConnectionError, RuntimeError):
            self._broken = True  # the peer went away; the receive side notices and cleans up
        except Exception as exc:
            self._broken = True
            log.warning("client_writer_failed", client=self.id, error=f"{type(exc).__name__}: {exc}")
            if not self.ws.closed:
                await self.ws.close(code=1011, message=b"server error; reconnect and resume")
        finally:
            # Nothing awaits between the empty check and here: an offer made meanwhile found the
            # writer still set and its item is in the outbox the loop just emptied, so it ran.
            self._writer = None
            if not outbox:
                self._outbox = None

    async def _write(self, item: Outgoing) -> None:
        match item:
            case str():
                await self._send(item)
            case Live():
                await self._live(item)
            case Sync():
                await self._sync(item)
            case Drop(game_id):
                self._last.pop(game_id, None)
            case Ping():
                await self.ws.ping()

    async def _sync(self, item: Sync) -> None:
        if item.after_seq is not None:
            self._last[item.game_id] = item.after_seq
        if item.game_id in self._last:
            await self._catch_up(item.game_id, None)

    async def _live(self, item: Live) -> None:
        last = self._last.get(item.game_id)
        # Not synced yet: the Sync behind it reads the stream, which already holds this message.
        if last is None or item.seq <= last:
            return
        if item.seq > last + 1:
            await self._catch_up(item.game_id, item.seq - 1)
        await self._send(item.text)
        self._last[item.game_id] = item.seq

    async def _catch_up(self, game_id: str, up_to: int | None) -> None:
        last = self._last[game_id]
        missed = await self._history(game_id, last, up_to)
        if (missed and missed[0][0] != last + 1) or (not missed and up_to is not None and up_to > last):
            # The stream no longer holds what this client missed (it was trimmed while the client
            # fell behind): it reloads the game from the query API; what follows comes live.
            upto = up_to if up_to is not None else missed[-1][0]
            RELOADS.labels("trimmed").inc()
            await self._send(reload(game_id, upto, "trimmed"))
            self._last[game_id] = upto
            return
        REPLAYED.inc(len(missed))
        for seq, text in missed:
            await self._send(text)
            self._last[game_id] = seq

    async def _send(self, text: str) -> None:
        await self.ws.send_str(text)
        self.sent += 1
        MESSAGES_SENT.inc()
