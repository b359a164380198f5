"""The query service's Kafka consumer: every record of the plays topic into the read model."""

from __future__ import annotations

from collections.abc import Sequence

from services.query.projection import Projector
from shared.kafka import BatchHandler, Record, history_games
from shared.logging import get_logger

log = get_logger(__name__)


def batch_handler(projector: Projector) -> BatchHandler:
    """The ConsumerLoop handler: one transaction per partition batch, one log line per batch."""

    async def handle(records: Sequence[Record]) -> None:
        # Games whose records here are all history (bulk imports) are valued by the background
        # pass (services/query/values.py) instead of in the batch: an import is not kept waiting.
        changed = await projector.apply_records(
            [r.value for r in records], defer_values=history_games(records)
        )
        log.debug("plays_projected", records=len(records), changed=changed)

    return handle
