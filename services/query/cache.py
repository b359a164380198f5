"""The query service's answer cache (shared.answers): its tags and its generations table.

An answer reads its games (`game:<id>`), else its seasons (`season:<year>`), else `all`. The
projector raises, in each batch's transaction, the generations of the games, seasons and teams
(`team:<code>`) the batch wrote and of `all`, in `read_generations`. Answers are kept in process
and, when Redis is reachable, in its shared tier, so that of several query instances one computes
an answer and the others use it (a short lock while it does); Redis is optional for the query
service: without it each instance computes an answer once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from shared import answers
from shared.answers import AnswerCache, cache_key
from shared.config import Settings
from shared.deps import Dependency

GENERATIONS = "read_generations"
__all__ = ["GENERATIONS", "AnswerCache", "batch_tags", "bump", "cache_key", "open_cache"]


def open_cache(settings: Settings, redis: Dependency[Any] | None = None) -> AnswerCache:
    return AnswerCache("query", GENERATIONS, settings.answer_cache_entries, settings.answer_cache_bytes,
                       settings.answer_cache_entry_bytes, redis=redis,
                       redis_prefix=settings.kafka.topic_prefix)  # fmt: skip


def batch_tags(games: Iterable[Any]) -> list[str]:
    """The tags a batch of these games' events changes (games as shared.events.GameView)."""
    tags = {"all"}
    for g in games:
        tags.update((f"game:{g.game_id}", f"season:{g.season}", f"team:{g.home}", f"team:{g.away}"))
    return sorted(tags)


async def bump(conn: asyncpg.Connection, tags: list[str]) -> None:
    await answers.bump(conn, GENERATIONS, tags)
