"""The query service answers bad cursors, ids and parameters with a 400, never a 500."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor([2019, "2019090800", 2**63, "p"]),  # beyond int64
        _cursor([2019, "2019090800", 2**31, "p"]),  # beyond the column (integer)
        _cursor([2019, "2019090800", -1, "p"]),
        _cursor([99999, "g", 1, "p"]),
        _cursor([2019, "g\u0000", 1, "p"]),
        _cursor([2019, "g", 1]),
        _cursor({"season": 2019}),
        base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode().rstrip("="),  # nested past any limit
        "not*base64",
        "eyJ",
    ],
)
async def test_a_tampered_cursor_is_a_400(query: TestClient[Any, Any], cursor: str) -> None:
    resp = await query.get("/v1/plays", params={"cursor": cursor})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_parameters" and error["details"][0]["field"] == "cursor"


async def test_a_cursor_this_api_made_still_works(query: TestClient[Any, Any]) -> None:
    resp = await query.get("/v1/plays", params={"cursor": _cursor([2019, "2019090800", 5, "2019090800:5"])})
    assert resp.status == 200
    assert (await resp.json())["items"] == []


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("/v1/plays/a%00b", "invalid_path"),
        ("/v1/games/a%FF", "invalid_path"),
        ("/v1/plays?game_id=a%00", "invalid_parameters"),
        ("/v1/plays?season=2019&season=2020", "invalid_parameters"),
        ("/v1/plays?limit=99999999999999999999999999", "invalid_parameters"),
    ],
)
async def test_bad_ids_and_parameters_are_400(query: TestClient[Any, Any], target: str, code: str) -> None:
    from yarl import URL

    resp = await query.get(URL(target, encoded=True))
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == code
    assert (await query.get("/v1/plays/nothing-here")).status == 404
