"""The analytics service's Kafka consumer: plays into the aggregates."""

from __future__ import annotations

from collections.abc import Sequence

from services.analytics.store import AggregateStore
from shared.kafka import BatchHandler, Record, history_games


def batch_handler(store: AggregateStore) -> BatchHandler:
    """One transaction per partition batch."""

    async def handle(records: Sequence[Record]) -> None:
        # Games whose records here are all history (bulk imports) are valued in the background.
        await store.apply_records([r.value for r in records], defer_values=history_games(records))

    return handle
