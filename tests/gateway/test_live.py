"""The /v1/live WebSocket proxy: messages both ways, close codes, tokens, and a live service that is down."""

from __future__ import annotations

import aiohttp

from tests.gateway.conftest import Accounts, Client, StartGateway, assert_error, bearer, sign_in


async def test_round_trip_with_bearer_header(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    async with gateway.ws_connect("/v1/live?x=1", headers=bearer(pair["access_token"])) as ws:
        hello = await ws.receive_json()
        assert hello == {"query": "x=1", "subject": f"user:{name}"}
        await ws.send_str('{"op": "subscribe", "game_ids": ["2013090500"]}')
        assert (await ws.receive_str()) == 'echo:{"op": "subscribe", "game_ids": ["2013090500"]}'
        await ws.send_bytes(b"\x01\x02\x03")
        assert (await ws.receive_bytes()) == b"\x03\x02\x01"


async def test_token_in_query_is_accepted_and_not_forwarded(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("analyst")
    token = (await sign_in(gateway, name, password))["access_token"]
    async with gateway.ws_connect(f"/v1/live?access_token={token}&game_id=1") as ws:
        hello = await ws.receive_json()
        assert hello == {"query": "game_id=1", "subject": f"user:{name}"}


async def test_upstream_close_code_reaches_the_client(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    async with gateway.ws_connect("/v1/live", headers={"X-API-Key": key}) as ws:
        await ws.receive_json()
        await ws.send_str("close")
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4000


async def test_without_token_is_401_before_upgrade(gateway: Client) -> None:
    await assert_error(
        await gateway.get("/v1/live", headers={"Connection": "Upgrade", "Upgrade": "websocket"}), 401
    )


async def test_plain_get_is_426(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    await assert_error(await gateway.get("/v1/live", headers={"X-API-Key": key}), 426, "upgrade_required")


async def test_live_service_down_is_503(start_gateway: StartGateway, people: Accounts) -> None:
    gateway = await start_gateway(LIVE_URL="http://127.0.0.1:1")
    _, key = await people.key("viewer")
    headers = {"X-API-Key": key, "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    resp = await gateway.get("/v1/live", headers=headers)
    await assert_error(resp, 503, "upstream_unavailable")
    assert "Retry-After" in resp.headers
