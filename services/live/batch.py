"""Redis reads issued in the same turn of the event loop, sent together as one pipeline.

A reconnect storm (a deploy, a network blip) brings thousands of subscribes and resumes within a
few milliseconds, each needing a few reads. One connection and round trip per read exhausts any
pool (150 subscribes at once failed on the old 100-connection default); gathered into pipelines of
at most `limit` commands they take a handful of connections and round trips instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from services.live.metrics import READ_BATCH, READ_BATCHES_IN_FLIGHT
from shared.deps import Dependency

_Pending = tuple[str, tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class ReadBatcher:
    """`await batcher("mget", keys)` runs `mget` in the next pipeline sent for this loop turn."""

    def __init__(self, redis: Dependency[aioredis.Redis], limit: int = 256) -> None:
        self._redis = redis
        self._limit = limit
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"ReadBatcher(pending={len(self._pending)}, in_flight={len(self._sending)})"

    async def __call__(self, command: str, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, args, kwargs, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._limit):
            task = asyncio.create_task(self._send(pending[start : start + self._limit]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        READ_BATCH.observe(len(batch))
        READ_BATCHES_IN_FLIGHT.inc()
        try:
            pipe = self._redis.get().pipeline(transaction=False)
            for command, args, kwargs, _ in batch:
                getattr(pipe, command)(*args, **kwargs)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # Unavailable, a Redis or connection error: every caller sees it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except asyncio.CancelledError:
            for *_, future in batch:
                future.cancel()
            raise
        finally:
            READ_BATCHES_IN_FLIGHT.dec()
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # its caller went away (a closed socket)
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
