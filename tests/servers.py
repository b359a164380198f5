"""Test servers that run an app as `serve` does: through shared.server.Runner (JSON parser errors)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from shared.server import Runner


class ServiceServer(TestServer):
    """A TestServer whose connections answer malformed HTTP in the JSON error format."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return Runner(self.app, **kwargs)
