"""Background tasks feeding the hub: the Redis pub/sub relay and the heartbeat."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from services.live.client import Live, text_frame
from services.live.hub import SLICES, Hub
from services.live.messages import head_decoder, heartbeat
from services.live.sequencer import Sequencer
from shared.deps import Dependency
from shared.logging import get_logger
from shared.tasks import cancel_requested

log = get_logger(__name__)


async def relay(redis: Dependency[aioredis.Redis], sequencer: Sequencer, hub: Hub) -> None:
    """Pass the messages of the games followed here, published by any instance, to local clients.

    The relay subscribes to one channel per followed game (not to every game), so an instance
    whose viewers watch two games receives two games' messages. A new subscription may start
    after a message was published: followers of newly subscribed games then catch up from the
    game's stream.
    """
    client = await redis.wait()
    league = sequencer.keys.league.encode()
    async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
        subscribed: set[str] = set()
        log.info("relay_started")
        while True:
            if cancel_requested():  # asked to stop, though a read below may have eaten the cancel
                raise asyncio.CancelledError
            wanted = hub.games()
            if wanted != subscribed:
                await _resubscribe(pubsub, sequencer, wanted - subscribed, subscribed - wanted)
                hub.catch_up(wanted - subscribed)
                subscribed = wanted
                hub.relayed(subscribed)
            if not subscribed:
                # A plain sleep, not a timed wait on an event: nothing here may turn a
                # cancellation at shutdown into a timeout that the loop would swallow.
                await asyncio.sleep(0.05)
                continue
            message = await pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            # What else has already arrived goes with it (a play and its `score` and `game_state`
            # are published by one script call and arrive together): one write per socket for them.
            batch = [message]
            while len(batch) < RELAY_BATCH and (more := await pubsub.get_message(timeout=0.0)) is not None:
                batch.append(more)
            deliver(hub, league, batch)
            # A burst can sit in one read buffer; yielding lets writers drain between batches,
            # so only clients that really fall behind fill their queues.
            await asyncio.sleep(0)


RELAY_BATCH = 256  # pub/sub messages taken from one read buffer before they are sent on


def deliver(hub: Hub, league: bytes, batch: list[dict[str, Any]]) -> None:
    """Send a batch of pub/sub messages on: each game's sequenced messages as one run (in the order
    they were published), each league message to the league channel's followers."""
    runs: dict[str, list[Live]] = {}
    for message in batch:
        if message["type"] != "message":
            continue
        data: bytes = message["data"]
        head = head_decoder.decode(data)
        text = data.decode()
        if message["channel"] == league:
            hub.publish_league(head.game_id, text)
        else:
            runs.setdefault(head.game_id, []).append(Live(head.game_id, head.seq, text, text_frame(text)))
    for game_id, items in runs.items():
        hub.publish_run(game_id, items)


async def _resubscribe(pubsub: Any, sequencer: Sequencer, add: set[str], drop: set[str]) -> None:
    if add:
        await pubsub.subscribe(*(sequencer.keys.channel(g) for g in sorted(add)))
    if drop:
        await pubsub.unsubscribe(*(sequencer.keys.channel(g) for g in sorted(drop)))
    log.info("relay_subscriptions", added=len(add), dropped=len(drop))


async def heartbeats(hub: Hub, every_seconds: float, ping_every: int) -> None:
    """The keep-alive: every client gets a `heartbeat` every `every_seconds` and, every `ping_every`
    rounds, a WebSocket ping with it; a client silent for `ping_every` rounds and a half is dropped.
    One slice of the clients (hub.SLICES, by id) is visited at a time, so the writes are spread
    evenly over the round: 10,000 heartbeats at one instant held a game's messages up to half a
    second, and aiohttp's own per-socket ping timers (rounded to whole seconds) fired a third of
    them in the same instant. Queue depths are sampled once a round."""
    loop = asyncio.get_running_loop()
    step = every_seconds / SLICES
    silence = every_seconds * (ping_every + 0.5)
    tick = 0
    next_at = loop.time()
    while True:
        next_at += step
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        part, round_ = tick % SLICES, tick // SLICES
        if part == 0:
            hub.sample_depths()
        # A client's slice is pinged every `ping_every` rounds, the slices' pings staggered.
        ping = (round_ + part) % ping_every == 0
        hub.beat(part, heartbeat(), ping, loop.time() - silence)
        tick += 1
