"""Stopping a task so that a shutdown always ends.

`task.cancel()` followed by `await task` waits forever when the task swallows its cancellation:
a library that turns a cancel racing with its own timeout into "no message yet" (redis-py's
pub/sub reads have done so, redis/redis-py#2551) leaves the task looping in state "cancelling".
A live instance's relay did exactly that at shutdown and held a test run until CI's time limit.
`stop_task` asks again every `STOP_RETRY_SECONDS` and gives up after `seconds`, logged and
counted, so a stuck task costs a bounded wait instead of the whole shutdown.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter

from shared.logging import get_logger

log = get_logger(__name__)

STOP_RETRY_SECONDS = 0.5
STOP_TASK_SECONDS = 10.0

TASK_CANCELS_REPEATED = Counter(
    "snapline_task_cancels_repeated_total",
    "Cancellations asked again because a stopping task had swallowed the first one",
    ["task"],
)
TASK_STOPS_ABANDONED = Counter(
    "snapline_task_stops_abandoned_total",
    "Tasks left running at shutdown after STOP_TASK_SECONDS of cancellations",
    ["task"],
)


async def stop_task(task: asyncio.Task[Any], name: str, seconds: float = STOP_TASK_SECONDS) -> None:
    """Cancel `task` and wait for it to end, cancelling it again while it does not; after
    `seconds` it is left running (logged). Its result or exception is not raised here."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    asks = 0
    while not task.done():
        task.cancel()
        asks += 1
        if asks == 2:
            TASK_CANCELS_REPEATED.labels(name).inc()
            log.warning("task_swallowed_cancel", task=name)
        left = deadline - loop.time()
        if left <= 0:
            TASK_STOPS_ABANDONED.labels(name).inc()
            log.error("task_stop_abandoned", task=name, seconds=seconds, cancels=asks)
            return
        await asyncio.wait({task}, timeout=min(STOP_RETRY_SECONDS, left))
    if not task.cancelled():
        task.exception()  # retrieved: a failure while stopping was logged where it happened


def cancel_requested() -> bool:
    """Whether the running task has been asked to stop (a cancellation it may not have seen:
    loops that call libraries which can swallow one check this every round)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
