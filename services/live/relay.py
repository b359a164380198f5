"""Background tasks feeding the hub: the Redis pub/sub relay and the heartbeat."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.live.hub import Hub
from services.live.messages import head_decoder, heartbeat
from services.live.sequencer import Sequencer
from shared.deps import Dependency
from shared.logging import get_logger

log = get_logger(__name__)


async def relay(redis: Dependency[aioredis.Redis], sequencer: Sequencer, hub: Hub) -> None:
    """Pass every sequenced message published by any instance to this instance's clients."""
    client = await redis.wait()
    async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.psubscribe(sequencer.keys.channel_pattern)
        log.info("relay_subscribed", pattern=sequencer.keys.channel_pattern)
        # Anything published while this relay was not subscribed is in the streams.
        hub.catch_up_all()
        async for message in pubsub.listen():
            if message["type"] != "pmessage":
                continue
            # The channel names the game: messages of games nobody here follows cost no decoding.
            if not hub.follows(sequencer.keys.game_of_channel(message["channel"])):
                continue
            data: bytes = message["data"]
            head = head_decoder.decode(data)
            hub.publish(head.game_id, head.seq, data.decode())
            # A burst can sit in one read buffer; yielding lets writers drain between messages,
            # so only clients that really fall behind fill their queues.
            await asyncio.sleep(0)


async def heartbeats(hub: Hub, every_seconds: float) -> None:
    """Send every client a heartbeat, and sample queue depths, every `every_seconds`."""
    while True:
        await asyncio.sleep(every_seconds)
        hub.sample_depths()
        hub.broadcast(heartbeat())
