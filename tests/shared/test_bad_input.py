"""Bad input on any service answers a JSON 4xx in the one error format, never a 500 or a text page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from shared.config import Settings
from shared.errors import ApiError
from shared.http import base_app, json_response
from shared.jsonbody import parse_json
from tests.servers import ServiceServer


async def _echo(request: web.Request) -> web.Response:
    return json_response({"id": request.match_info["thing_id"], "query": dict(request.query)})


async def _post(request: web.Request) -> web.Response:
    return json_response(parse_json(await request.read()))


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[TestClient[Any, Any]]:
    app = base_app(make_settings("test", MAX_LINE_BYTES="1024", MAX_HEADER_BYTES="2048", MAX_HEADERS="20"))
    app.router.add_get("/v1/things/{thing_id}", _echo)
    app.router.add_post("/v1/things", _post)
    client: TestClient[Any, Any] = TestClient(ServiceServer(app))
    await client.start_server()
    yield client
    await client.close()


async def raw(client: TestClient[Any, Any], head: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send `head` as it is (bytes aiohttp's client would refuse); status, headers, JSON body."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(head)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def assert_format(body: dict[str, Any], code: str) -> dict[str, Any]:
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert "Traceback" not in error["message"]
    return error


@pytest.mark.parametrize(
    ("target", "status", "code", "field"),
    [
        ("/v1/things/a?q=a%00b", 400, "invalid_parameters", "q"),
        ("/v1/things/a?q=a%FFb", 400, "invalid_parameters", "q"),
        ("/v1/things/a?q=%ED%A0%80", 400, "invalid_parameters", "q"),  # a lone surrogate, UTF-8 encoded
        ("/v1/things/a?q%00=1", 400, "invalid_parameters", "q%00"),
        ("/v1/things/a?q=1&q=2", 400, "invalid_parameters", "q"),
        ("/v1/things/a%00b", 400, "invalid_path", "path"),
        ("/v1/things/a%C3%28", 400, "invalid_path", "path"),
    ],
)
async def test_bad_text_in_the_url_is_a_400_naming_it(
    client: TestClient[Any, Any], target: str, status: int, code: str, field: str
) -> None:
    got, headers, body = await raw(
        client, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert (got, headers["content-type"].split(";")[0]) == (status, "application/json")
    assert assert_format(body, code)["details"][0]["field"] == field


async def test_good_text_passes(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1/things/caf%C3%A9", params={"q": "a,b", "r": "ü"})
    assert resp.status == 200
    assert await resp.json() == {"id": "café", "query": {"q": "a,b", "r": "ü"}}


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (b"GET /v1/things/" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request_line_too_long"),
        (b"GET /v1/things/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"GET /v1/things/a HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(30)) + b"\r\n", 431,
         "headers_too_large"),
        (b"GET /v1/things/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/things/a\xffb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed_request"),  # TLS to HTTP
        (b"POST /v1/things HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400, "malformed_request"),
    ],
)  # fmt: skip
async def test_what_the_parser_refuses_is_json_too(
    client: TestClient[Any, Any], head: bytes, status: int, code: str
) -> None:
    got, headers, body = await raw(client, head)
    assert (got, headers["content-type"].split(";")[0]) == (status, "application/json")
    assert_format(body, code)
    assert (await client.get("/healthz")).status == 200  # and the server goes on


async def test_a_compressed_body_is_refused_with_415(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v1/things", data=b"\x1f\x8b\x08\x00", headers={"Content-Encoding": "gzip"})
    assert resp.status == 415
    error = assert_format(await resp.json(), "unsupported_encoding")
    assert "gzip" in error["message"] and "identity" in error["message"]
    plain = await client.post("/v1/things", data=b"[1]", headers={"Content-Encoding": "identity"})
    assert plain.status == 200


async def test_405_names_the_allowed_methods(client: TestClient[Any, Any]) -> None:
    resp = await client.delete("/v1/things/a")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, HEAD"
    assert "GET, HEAD" in assert_format(await resp.json(), "method_not_allowed")["message"]


async def test_a_request_id_that_is_not_a_plain_token_is_replaced(client: TestClient[Any, Any]) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert replaced.headers["X-Request-ID"] != "x" * 500


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": "x\\u0000"}', "NUL"),
        (b'{"a\\u0000": 1}', "NUL"),
        (b'{"a": "\\ud800"}', "not acceptable JSON"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "deeper than 32"),
        (b"[" * 5000 + b"]" * 5000, "deeper than 32"),
        (b'{"a": 9223372036854775808}', "64-bit"),
        (b'{"a": -9223372036854775809}', "64-bit"),
        (b'{"a": ', "truncated"),
    ],
)
def test_parse_json_refuses_what_no_service_can_use(raw: bytes, problem: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_json(raw)
    assert caught.value.status == 400 and caught.value.code == "malformed_json"
    assert problem in caught.value.message


def test_parse_json_names_where_and_accepts_the_rest() -> None:
    with pytest.raises(ApiError) as caught:
        parse_json(b'{"users": [{"name": "a\\u0000"}]}', what="the user")
    assert caught.value.details == [
        {"field": "users[0].name", "message": "a string holds a NUL character (\\u0000)"}
    ]
    assert caught.value.message.startswith("the user is not acceptable JSON")
    value = {"a": [1, 2.5, None, True, "é"], "b": {"c": 9223372036854775807}}
    assert parse_json(json.dumps(value).encode()) == value
