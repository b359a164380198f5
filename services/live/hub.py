"""This instance's WebSocket clients and the fan-out of messages to them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web

from services.live.client import PING, PING_FRAME, Client, History, Live, Outgoing, Run, Sync, text_frame
from services.live.metrics import (
    CLIENTS,
    DEAD_DISCONNECTS,
    DIRECT_WRITES,
    MESSAGES_SENT,
    QUEUE_DEPTH,
    QUEUE_DEPTH_MAX,
    SLOW_DISCONNECTS,
    SOCKET_WRITES,
)
from services.live.sequencer import LEAGUE
from shared.logging import get_logger

log = get_logger(__name__)
SLOW_REASON = "too slow: reconnect and resume with after_seq"
# The clients are split by id into this many slices; the keep-alive visits one slice at a time
# (heartbeat_seconds / SLICES apart), so its writes are small and even, never a burst of 10,000.
SLICES = 150


class Hub:
    """Routes each game's messages to the local clients following it; never waits on a client."""

    def __init__(self, history: History, queue_size: int) -> None:
        self._history = history
        self._queue_size = queue_size
        self._clients: set[Client] = set()
        self._slices: list[set[Client]] = [set() for _ in range(SLICES)]
        self._followers: dict[str, set[Client]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._relayed: set[str] = set()  # games whose channel the relay has subscribed to
        self._relay_changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"Hub(clients={len(self._clients)}, games={len(self._followers)})"

    def connect(
        self, ws: web.WebSocketResponse, peer: str, transport: asyncio.Transport | None = None,
        socket: asyncio.Transport | None = None,
    ) -> Client:  # fmt: skip
        """Register a new client (its writer starts with the first message queued for it); with
        `transport`, in-order messages are written to it directly; `socket` is the connection to
        abort if the client goes silent (the transport when not given)."""
        client = Client(ws, self._history, self._queue_size, peer, transport, socket)
        self._clients.add(client)
        self._slices[client.id % SLICES].add(client)
        CLIENTS.set(len(self._clients))
        return client

    async def disconnect(self, client: Client) -> None:
        """Forget a client and stop its writer."""
        self.unfollow(client, list(client.games))
        self._forget(client)
        await client.stop()

    def _forget(self, client: Client) -> None:
        self._clients.discard(client)
        self._slices[client.id % SLICES].discard(client)
        CLIENTS.set(len(self._clients))

    def follow(self, client: Client, game_ids: Iterable[str]) -> None:
        for game_id in game_ids:
            client.games.add(game_id)
            self._followers.setdefault(game_id, set()).add(client)

    def unfollow(self, client: Client, game_ids: Iterable[str]) -> None:
        for game_id in game_ids:
            client.games.discard(game_id)
            followers = self._followers.get(game_id)
            if followers is not None:
                followers.discard(client)
                if not followers:
                    del self._followers[game_id]

    def send(self, client: Client, item: Outgoing) -> None:
        """Queue one item for one client, disconnecting it when its queue is full."""
        if client in self._clients and not client.offer(item):
            self._evict(client)

    def games(self) -> set[str]:
        """The games some local client follows."""
        return set(self._followers)

    def relayed(self, game_ids: set[str]) -> None:
        """The relay's subscriptions now: the channels of `game_ids` deliver here."""
        self._relayed = set(game_ids)
        self._relay_changed.set()
        self._relay_changed = asyncio.Event()

    async def until_relayed(self, game_id: str, seconds: float) -> None:
        """Wait until the relay receives `game_id`'s channel (TimeoutError after `seconds`)."""
        async with asyncio.timeout(seconds):
            while game_id not in self._relayed:
                await self._relay_changed.wait()

    def catch_up(self, game_ids: Iterable[str]) -> None:
        """Have the followers of these games read what pub/sub may not have brought them."""
        for game_id in game_ids:
            for client in list(self._followers.get(game_id, ())):
                self.send(client, Sync(game_id))

    def publish(self, game_id: str, seq: int, text: str) -> None:
        """Queue a sequenced message for every follower of its game."""
        self.publish_run(game_id, [Live(game_id, seq, text, text_frame(text))])

    def publish_run(self, game_id: str, items: list[Live]) -> None:
        """Send a game's messages, in the order they were published, to every follower. When their
        seqs are consecutive, an up-to-date socket gets all of them in one write (one system call
        here, one read and one write at the gateway) instead of one write each."""
        followers = self._followers.get(game_id)
        if not followers:
            return
        first = items[0].seq
        run = None
        if len(items) > 1 and all(item.seq == first + i for i, item in enumerate(items)):
            run = Run(game_id, first, len(items), b"".join(item.frame for item in items))
        direct = writes = 0
        for client in list(followers):
            if run is not None and client.write_run_now(run):
                direct += run.count
                writes += 1
                continue
            for item in items:  # once one is queued, write_now refuses the rest: they queue behind it
                if client.write_now(item):
                    direct += 1
                    writes += 1
                else:
                    self.send(client, item)
        if direct:
            MESSAGES_SENT.inc(direct)
            DIRECT_WRITES.inc(direct)
            SOCKET_WRITES.inc(writes)

    def publish_league(self, game_id: str, text: str) -> None:
        """Queue a game's `score` or `game_state` for the league channel's followers, except those
        following that game itself (they have it from the game's own stream)."""
        for client in list(self._followers.get(LEAGUE, ())):
            if game_id not in client.games:
                self.send(client, text)

    def beat(self, part: int, text: str, ping: bool, silent_since: float) -> None:
        """The keep-alive of one slice of the clients: a `heartbeat` message to each, a ping too
        when `ping` (written with it, one write), and clients that have sent nothing (not even the
        pong of an earlier ping) since `silent_since` (loop time) are dropped as gone."""
        frame = text_frame(text)
        if ping:
            frame += PING_FRAME
        direct = 0
        for client in list(self._slices[part]):
            if client.seen < silent_since:
                DEAD_DISCONNECTS.inc()
                log.info("client_silent", client=client.id, peer=client.peer)
                client.abort()
                continue
            if client.write_frame_now(frame):
                direct += 1
                continue
            self.send(client, text)
            if ping:
                self.send(client, PING)
        if direct:
            MESSAGES_SENT.inc(direct)
            DIRECT_WRITES.inc(direct)
            SOCKET_WRITES.inc(direct)

    def sample_depths(self) -> None:
        depths = [client.depth for client in self._clients]
        for depth in depths:
            QUEUE_DEPTH.observe(depth)
        QUEUE_DEPTH_MAX.set(max(depths, default=0))

    async def close_all(self, code: int, reason: str) -> None:
        """Close every client (at shutdown)."""
        await asyncio.gather(*(c.close(code, reason) for c in list(self._clients)), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _evict(self, client: Client) -> None:
        # Waiting for a slow client would delay every other client; it resumes from its last seq.
        SLOW_DISCONNECTS.inc()
        log.info("client_too_slow", client=client.id, peer=client.peer, queued=client.depth)
        self.unfollow(client, list(client.games))
        self._forget(client)
        task = asyncio.create_task(client.close(1013, SLOW_REASON), name=f"evict-{client.id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
