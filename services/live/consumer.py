"""The play-event consumer: every live instance in one group, each game sequenced by its owner."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from services.live.messages import views_of
from services.live.metrics import DELIVERY_SECONDS, SEQUENCED
from services.live.sequencer import Sequencer
from services.live.values import LiveValues
from shared.config import Settings
from shared.deps import Dependency
from shared.kafka import BatchHandler, ConsumerLoop, Record, is_history


def _event_count(record: Record) -> int:
    """Events in a record, from the header ingest sets (1 for a single event)."""
    for key, value in record.headers or ():
        if key == "event_count":
            try:
                return int(value)
            except ValueError:
                break
    return 1


def plays_handler(sequencer: Sequencer, values: LiveValues | None = None) -> BatchHandler:
    """Decode a batch (a bad record raises, to be dead-lettered), then sequence it in order.

    Redis failures are transient to ConsumerLoop: the batch waits for Redis instead of being
    dead-lettered, and the idempotent script numbers nothing twice when a half-run batch repeats.
    """

    async def handle(records: Sequence[Record]) -> None:
        live = [r for r in records if not is_history(r)]
        if len(live) < len(records):
            # History (bulk imports of past games) is not broadcast: viewers follow live games,
            # and `snapline replay` turns a stored game into a live feed when one is wanted. The
            # games are remembered (records are keyed by game), so a viewer of one is told to
            # load it from the query API instead of waiting for plays that never come.
            history = [r for r in records if is_history(r)]
            SEQUENCED.labels("history").inc(sum(_event_count(r) for r in history))
            await sequencer.mark_history(sorted({r.key.decode() for r in history if r.key}))
        if not live:
            return
        events = views_of(record.value for record in live)
        seqs = await sequencer.sequence(events, values.extras(events) if values is not None else None)
        fresh = sum(1 for seq in seqs if seq)
        SEQUENCED.labels("sequenced").inc(fresh)
        SEQUENCED.labels("duplicate").inc(len(seqs) - fresh)
        now = time.time()
        for record in live:
            DELIVERY_SECONDS.observe(max(0.0, now - record.timestamp / 1000))

    return handle


def plays_loop(
    settings: Settings,
    sequencer: Sequencer,
    dead_letter: Dependency[AIOKafkaProducer],
    values: LiveValues | None = None,
) -> ConsumerLoop:
    """The plays-topic loop in the group all live instances share."""
    return ConsumerLoop.plays(settings, plays_handler(sequencer, values), dead_letter)
