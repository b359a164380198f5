"""The gateway refuses bad input itself, before authentication and before anything is proxied."""

from __future__ import annotations

import pytest
from yarl import URL

from tests.gateway.conftest import Client, assert_error


@pytest.mark.parametrize(
    ("target", "code", "field"),
    [
        ("/v1/plays/a%00b", "invalid_path", "path"),
        ("/v1/plays?team=%FF", "invalid_parameters", "team"),
        ("/v1/plays?team=CAR&team=LA", "invalid_parameters", "team"),
    ],
)
async def test_bad_urls_are_400_before_auth(gateway: Client, target: str, code: str, field: str) -> None:
    error = await assert_error(await gateway.get(URL(target, encoded=True)), 400, code)
    assert error["details"][0]["field"] == field


async def test_compressed_bodies_are_refused_not_forwarded(gateway: Client) -> None:
    resp = await gateway.post("/v1/events", data=b"\x1f\x8b\x08", headers={"Content-Encoding": "gzip"})
    error = await assert_error(resp, 415, "unsupported_encoding")
    assert "identity" in error["message"]


async def test_405_carries_allow(gateway: Client) -> None:
    resp = await gateway.get("/v1/events")
    await assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == "POST"
