"""The query service's Kafka consumer: every record of the plays topic into the read model."""

from __future__ import annotations

from collections.abc import Sequence

from services.query.projection import Projector
from shared.kafka import BatchHandler, Record
from shared.logging import get_logger

log = get_logger(__name__)


def batch_handler(projector: Projector) -> BatchHandler:
    """The ConsumerLoop handler: one transaction per partition batch, one log line per batch."""

    async def handle(records: Sequence[Record]) -> None:
        changed = await projector.apply_records([r.value for r in records])
        log.debug("plays_projected", records=len(records), changed=changed)

    return handle
