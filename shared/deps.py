"""A dependency the service connects to in the background, retrying with backoff.

The HTTP server comes up at once; `/readyz` reports not-ready and handlers answer 503
until every dependency is connected, so a slow broker or database never crash-loops a pod.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from shared.logging import get_logger
from shared.tasks import stop_task
from shared.telemetry import DEPENDENCY_UP

T = TypeVar("T")
log = get_logger(__name__)


class Unavailable(Exception):
    """A dependency is not connected (yet); becomes 503 with Retry-After at the edge."""

    def __init__(self, name: str, retry_after: int = 2) -> None:
        super().__init__(f"{name} is not available, retry shortly")
        self.name = name
        self.retry_after = retry_after


class Dependency(Generic[T]):
    """Holds one connected resource, created by `connect` and released by `close`."""

    def __init__(
        self,
        name: str,
        service: str,
        connect: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]],
        check: Callable[[T], Awaitable[object]],
        max_backoff: float = 10.0,
    ) -> None:
        self.name = name
        self._service = service
        self._connect = connect
        self._close = close
        self._check = check
        self._max_backoff = max_backoff
        self._value: T | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.last_error: str | None = None

    def __repr__(self) -> str:
        state = "up" if self._value is not None else f"down ({self.last_error})"
        return f"Dependency({self.name!r}, {state})"

    def start(self) -> None:
        """Begin connecting in the background."""
        self._task = asyncio.create_task(self._run(), name=f"connect-{self.name}")

    async def _run(self) -> None:
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                self._value = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "dependency_unavailable",
                    dependency=self.name,
                    attempt=attempt,
                    error=self.last_error,
                    retry_in=round(delay, 2),
                )
                DEPENDENCY_UP.labels(self._service, self.name).set(0)
                await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
                delay = min(delay * 2, self._max_backoff)
                continue
            self.last_error = None
            DEPENDENCY_UP.labels(self._service, self.name).set(1)
            log.info("dependency_connected", dependency=self.name, attempts=attempt)
            self.connected.set()
            return

    def get(self) -> T:
        """The connected resource, or Unavailable when it is not connected yet."""
        if self._value is None:
            raise Unavailable(self.name)
        return self._value

    async def wait(self) -> T:
        await self.connected.wait()
        return self.get()

    async def healthy(self) -> tuple[bool, str | None]:
        """Whether the resource answers now (used by /readyz)."""
        if self._value is None:
            return False, self.last_error or "connecting"
        try:
            await asyncio.wait_for(self._check(self._value), timeout=2.0)
        except Exception as exc:
            DEPENDENCY_UP.labels(self._service, self.name).set(0)
            return False, f"{type(exc).__name__}: {exc}"
        DEPENDENCY_UP.labels(self._service, self.name).set(1)
        return True, None

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task, f"connect-{self.name}")
        if self._value is not None:
            value, self._value = self._value, None
            await self._close(value)
