"""What the dependency-down tests read: the services' own /metrics and /readyz, polled with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.factories import event_dict


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy; fail naming `what`."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = check()
                if asyncio.iscoroutine(last):
                    last = await last
                if last:
                    return last
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})") from None


async def metric(client: Any, name: str, **labels: str) -> float:
    """The sum of the samples of `name` with `labels` in the service's GET /metrics (0 if none)."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    total = 0.0
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def readiness(client: Any) -> tuple[int, dict[str, Any]]:
    """GET /readyz: its status and the check of each dependency."""
    resp = await client.get("/readyz")
    body = await resp.json()
    return resp.status, body["checks"]


def sack(game_id: str, play_id: str, defender: str) -> dict[str, Any]:
    """A play_recorded event crediting `defender` with one sack (a feed's JSON)."""
    return event_dict(
        game_id, play_id, sequence=int(play_id),
        participants=[{"player_id": defender, "team": "LA", "side": "defense", "name": "A.Rusher"}],
        stats=[{"stat_id": 83, "team": "LA", "player_id": defender, "yards": -8}],
    )  # fmt: skip


def ids_of(unique: str) -> tuple[str, str]:
    """A game id and a defender id of this test's own (the private database is shared by the session)."""
    n = int(unique[:8], 16) % 10**6
    return f"2019{n:06d}", f"00-9{n:06d}"
