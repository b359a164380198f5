"""Headless Chromium for the browser tests: Debian's `chromium` driven by playwright's bundled driver
(no browser download; `make test` installs the package when it is missing)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser


def chromium_path() -> str | None:
    """The system browser: $CHROMIUM when set, else chromium on PATH."""
    given = os.environ.get("CHROMIUM")
    return given if given else shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium of this test's own, closed afterwards."""
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on PATH (or $CHROMIUM): `make browser` installs Debian's chromium")
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is in the dev extras")
    async with playwright_api.async_playwright() as pw:
        # Chromium refuses to run as root with its sandbox on; the page is our own.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = await pw.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            yield launched
        finally:
            await launched.close()
