"""Stopping tasks that swallow their cancellation: a shutdown still ends."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import REGISTRY

from shared.http import add_background
from shared.tasks import cancel_requested, stop_task


def _count(metric: str, task: str) -> float:
    return REGISTRY.get_sample_value(metric, {"task": task}) or 0.0


async def test_a_task_that_swallows_one_cancel_is_asked_again_and_ends() -> None:
    started = asyncio.Event()

    async def swallows_once() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # what a library racing its own timeout did: "no message yet"
        await asyncio.Event().wait()  # and on it goes, as if nothing had been asked

    task = asyncio.create_task(swallows_once())
    await started.wait()
    before = _count("snapline_task_cancels_repeated_total", "swallow-once")
    await stop_task(task, "swallow-once", seconds=5.0)
    assert task.cancelled()
    assert _count("snapline_task_cancels_repeated_total", "swallow-once") == before + 1


async def test_a_task_that_never_stops_is_abandoned_after_the_limit() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await started.wait()
    before = _count("snapline_task_stops_abandoned_total", "stubborn")
    async with asyncio.timeout(5):  # the limit below holds: stop_task returns
        await stop_task(task, "stubborn", seconds=1.2)
    assert not task.done()
    assert _count("snapline_task_stops_abandoned_total", "stubborn") == before + 1
    release.set()
    await task


async def test_a_background_task_whose_cancel_became_an_error_is_not_restarted() -> None:
    calls = 0
    running = asyncio.Event()

    async def run() -> None:
        nonlocal calls
        calls += 1
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("connection closed") from None  # a library's view of the cancel

    app = web.Application()
    add_background(app, "converts-cancel", run)
    runner = web.AppRunner(app)
    await runner.setup()
    await running.wait()
    async with asyncio.timeout(5):
        await runner.cleanup()
    assert calls == 1  # stopped, not supervised into a second run


async def test_cancel_requested_sees_a_cancellation_that_was_caught() -> None:
    seen: list[bool] = []
    started = asyncio.Event()

    async def loop() -> None:
        seen.append(cancel_requested())
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        seen.append(cancel_requested())

    task = asyncio.create_task(loop())
    await started.wait()
    task.cancel()
    await task
    assert seen == [False, True]
