"""One WebSocket client: a bounded outgoing queue drained in order by its own writer task."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from services.live.metrics import MESSAGES_SENT, REPLAYED
from shared.logging import get_logger

log = get_logger(__name__)
History = Callable[[str, int, int | None], Awaitable[list[tuple[int, str]]]]
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Live:
    """A sequenced message as published; `text` is shared by every client."""

    game_id: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class Sync:
    """Start (or restart) a game after `after_seq`, or catch up from the last sent seq when None."""

    game_id: str
    after_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Stop sending a game."""

    game_id: str


Outgoing = Live | Sync | Drop | str  # a str is an unsequenced message sent as is


class Client:
    """A connected client; only its writer task touches the per-game last seq."""

    def __init__(self, ws: web.WebSocketResponse, history: History, queue_size: int, peer: str) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.peer = peer
        self.games: set[str] = set()
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(queue_size)
        self.sent = 0
        self._history = history
        self._last: dict[str, int] = {}
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"Client(id={self.id}, peer={self.peer!r}, games={len(self.games)}, queued={self.queue.qsize()})"
        )

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"live-client-{self.id}")

    def offer(self, item: Outgoing) -> bool:
        """Queue an item without waiting; False when the queue is full."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def stop(self) -> None:
        """Cancel the writer and wait for it."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def close(self, code: int, reason: str) -> None:
        """Stop writing and close the socket with `code`."""
        await self.stop()
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode())

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._write(await self.queue.get())
        except asyncio.CancelledError:
            raise
        except (ConnectionError, RuntimeError):
            return  # the peer went away; the receive side notices and cleans up
        except Exception as exc:
            log.warning("client_writer_failed", client=self.id, error=f"{type(exc).__name__}: {exc}")
            if not self.ws.closed:
                await self.ws.close(code=1011, message=b"server error; reconnect and resume")

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
        missed = await self._history(game_id, self._last[game_id], up_to)
        REPLAYED.inc(len(missed))
        for seq, text in missed:
            await self._send(text)
            self._last[game_id] = seq

    async def _send(self, text: str) -> None:
        await self.ws.send_str(text)
        self.sent += 1
        MESSAGES_SENT.inc()
