"""Bad input through the running stack's gateway: always a JSON 4xx in the error format, never a 500.

Drives GATEWAY_URL (`make up` starts it) with API keys of this test's own; requests that
aiohttp's client would refuse to send (a NUL byte or invalid UTF-8 in the request line, an
over-long line) go over a raw socket. Nothing here is accepted, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import aiohttp
import msgspec
import pytest
from yarl import URL

from tests.factories import event_dict
from tests.stack import GATEWAY

ORIGIN = URL(GATEWAY)
Answer = tuple[int, dict[str, str], bytes]


async def raw(head: bytes) -> Answer:
    """Send `head` byte for byte; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection(ORIGIN.host, ORIGIN.port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def request(method: str, target: bytes, key: str, extra: bytes = b"") -> bytes:
    return (method.encode() + b" " + target + b" HTTP/1.1\r\nHost: " + str(ORIGIN.host).encode()
            + b"\r\nX-API-Key: " + key.encode() + b"\r\nConnection: close\r\n" + extra + b"\r\n")  # fmt: skip


async def http(method: str, target: str, key: str, **kwargs: Any) -> Answer:
    headers = {"X-API-Key": key, **kwargs.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, URL(GATEWAY + target, encoded=True), headers=headers, **kwargs) as resp,
    ):
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


async def check(answer: Answer, status: int, code: str) -> dict[str, Any]:
    """The answer is `status` in the JSON error format with `code`; the gateway still answers."""
    got, headers, body = answer
    assert got == status, body[:500]
    assert headers["content-type"].split(";")[0] == "application/json"
    assert b"Traceback" not in body and b'File "' not in body
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code, error
    async with aiohttp.ClientSession() as session, session.get(f"{GATEWAY}/healthz") as resp:
        assert resp.status == 200
    return error


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def ndjson(*events: dict[str, Any]) -> bytes:
    return b"\n".join(msgspec.json.encode(e) for e in events)


@pytest.mark.parametrize(
    ("target", "code", "field"),
    [
        ("/v1/plays?game_id=a%00b", "invalid_parameters", "game_id"),
        ("/v1/plays?game_id=%ED%A0%80", "invalid_parameters", "game_id"),  # a lone surrogate
        ("/v1/plays?team=CAR&team=LA", "invalid_parameters", "team"),
        (f"/v1/plays?cursor={cursor([2019, '2019090800', 2**64, 'p'])}", "invalid_parameters", "cursor"),
        ("/v1/plays/2019090800%0051", "invalid_path", "path"),
        ("/v1/games/2019090800%00", "invalid_path", "path"),
        ("/v1/analytics/players/00-0030000%00/stats", "invalid_path", "path"),
    ],
)
async def test_bad_text_in_urls_is_400_naming_it(
    stack_keys: dict[str, str], target: str, code: str, field: str
) -> None:
    error = await check(await http("GET", target, stack_keys["viewer"]), 400, code)
    assert error["details"][0]["field"] == field


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (("GET", b"/v1/plays/2019090800\x0051", b""), 400, "malformed_request"),  # a NUL byte in the path
        (("GET", b"/v1/plays?team=%FF%FE", b""), 400, "invalid_parameters"),  # invalid UTF-8
        (("GET", b"/v1/plays/%C3%28", b""), 400, "invalid_path"),
        (("GET", b"/v1/plays?game_id=" + b"9" * 9000, b""), 400, "request_line_too_long"),
        (("GET", b"/v1/plays", b"X-Long: " + b"x" * 20000 + b"\r\n"), 431, "headers_too_large"),
        (("GET", b"/v1/plays", b"".join(b"X-H%d: 1\r\n" % i for i in range(150))), 431, "headers_too_large"),
        (("GET", b"/v1/pl ays", b""), 400, "malformed_request"),
        (("POST", b"/v1/events", b"Content-Length: many\r\n"), 400, "malformed_request"),
    ],
)  # fmt: skip
async def test_what_no_client_library_sends_is_json_too(
    stack_keys: dict[str, str], head: tuple[str, bytes, bytes], status: int, code: str
) -> None:
    method, target, extra = head
    await check(await raw(request(method, target, stack_keys["viewer"], extra)), status, code)


async def test_deep_json_and_compressed_bodies_are_refused(stack_keys: dict[str, str]) -> None:
    feed = stack_keys["feed"]
    json_type = {"Content-Type": "application/json"}
    deep = b"[" * 1000 + b"]" * 1000
    await check(await http("POST", "/v1/events", feed, data=deep, headers=json_type), 400, "malformed_json")
    gz = {**json_type, "Content-Encoding": "gzip"}
    error = await check(await http("POST", "/v1/events", feed, data=b"\x1f\x8b\x08\x00", headers=gz), 415,
                        "unsupported_encoding")  # fmt: skip
    assert "gzip" in error["message"] and "identity" in error["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": "sack\u0000"}, "play.description"),
        ({"sequence": 2**63}, "play.sequence"),
        ({"yards_gained": 10**30}, "play.yards_gained"),
    ],
)
async def test_values_no_store_can_keep_are_rejected_by_field(
    stack_keys: dict[str, str], unique: str, change: dict[str, Any], field: str
) -> None:
    event = event_dict(game_id=f"t{unique}", play_id="1", **change)
    answer = await http("POST", "/v1/events", stack_keys["feed"], data=ndjson(event),
                        headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    error = await check(answer, 422, "invalid_events")
    assert error["details"][0]["errors"][0]["field"] == field


async def test_rejections_are_summarised_and_bodies_capped(stack_keys: dict[str, str], unique: str) -> None:
    bad = [{"type": "play_recorded", "event_id": f"t{unique}-{i}", "junk": "x" * 300} for i in range(300)]
    answer = await http("POST", "/v1/events", stack_keys["feed"], data=ndjson(*bad),
                        headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    error = await check(answer, 422, "invalid_events")
    assert len(error["details"]) == 20 and "300" in error["message"] and len(answer[2]) < 20_000
    big = io.BytesIO(b"[" + b" " * (9 * 1024 * 1024) + b"]")
    answer = await http("POST", "/v1/events", stack_keys["feed"], data=big,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    await check(answer, 413, "payload_too_large")


async def test_405_lists_the_allowed_methods(stack_keys: dict[str, str]) -> None:
    answer = await http("GET", "/v1/events", stack_keys["feed"])
    await check(answer, 405, "method_not_allowed")
    assert answer[1]["allow"] == "POST"
    answer = await http("DELETE", "/v1/plays", stack_keys["viewer"])
    await check(answer, 405, "method_not_allowed")
    assert "GET" in answer[1]["allow"]
