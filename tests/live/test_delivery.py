"""snapline_live_delivery_seconds: measured from the record's Kafka timestamp, for live records only."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from shared.config import Settings
from shared.events import encoder
from tests.live.conftest import StartLive
from tests.live.support import plays, produce, recorded, subscribe

DELIVERY = "snapline_live_delivery_seconds"


def delivery() -> tuple[float, float]:
    """(count, sum) of the delivery histogram in this process."""
    return (REGISTRY.get_sample_value(f"{DELIVERY}_count") or 0.0,
            REGISTRY.get_sample_value(f"{DELIVERY}_sum") or 0.0)  # fmt: skip


async def test_delivery_is_timed_from_the_records_timestamp_and_skips_history(
    start_live: StartLive, producer: AIOKafkaProducer, live_settings: Settings, unique: str
) -> None:
    client = await start_live()
    game_id = f"G{unique}"
    ws = await client.ws_connect("/v1/live")
    await subscribe(ws, game_id)
    count, total = delivery()

    await produce(producer, live_settings, recorded(game_id, 1), history=True)
    # A live record published 20 s ago (as if ingest's publish had waited that long for live).
    published = time.time() - 20
    await producer.send_and_wait(live_settings.kafka.plays_topic, encoder.encode(recorded(game_id, 2)),
                                 key=game_id.encode(), timestamp_ms=int(published * 1000))  # fmt: skip
    assert [m["play_id"] for m in await plays(ws, 1)] == [f"{game_id}:2"]

    async with asyncio.timeout(10):
        while delivery()[0] < count + 1:
            await asyncio.sleep(0.05)
    after_count, after_total = delivery()
    assert after_count == count + 1  # the history record is not a delivery
    assert 20 <= after_total - total <= time.time() - published
    await ws.close()
