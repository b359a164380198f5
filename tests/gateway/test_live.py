"""The /v1/live WebSocket proxy: messages both ways, close codes, tokens, and a live service that is down."""

from __future__ import annotations

import aiohttp

from services.gateway.keys import LIVE_SPLICES
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


async def test_live_refusing_the_upgrade_is_502(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    headers = {"X-API-Key": key, "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    await assert_error(await gateway.get("/v1/live?refuse=1", headers=headers), 502, "bad_gateway")


async def test_large_text_and_binary_frames_pass_both_ways(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    async with gateway.ws_connect("/v1/live", headers={"X-API-Key": key}, max_msg_size=0) as ws:
        await ws.receive_json()
        blob = bytes(range(256)) * 1024  # 256 KiB: many reads each way
        await ws.send_bytes(blob)
        assert (await ws.receive_bytes(timeout=10)) == blob[::-1]
        await ws.send_str("big:300000")  # one 300,000-byte frame from live: an 8-byte length header
        assert (await ws.receive_str(timeout=10)) == "x" * 300_000
        for size in (0, 125, 126, 65535, 65536):  # each header length form, at its edges
            await ws.send_str(f"big:{size}")
            assert len(await ws.receive_str(timeout=10)) == size
        await ws.send_str("after")
        assert (await ws.receive_str(timeout=10)) == "echo:after"


async def test_live_close_code_and_reason_reach_the_client(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    async with gateway.ws_connect("/v1/live", headers={"X-API-Key": key}) as ws:
        await ws.receive_json()
        await ws.send_str("close:1013:you are too slow")
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1013, "you are too slow")


async def test_a_dropped_live_connection_closes_the_client(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    async with gateway.ws_connect("/v1/live", headers={"X-API-Key": key}) as ws:
        await ws.receive_json()
        await ws.send_str("drop")
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.closed or msg.type is aiohttp.WSMsgType.CLOSE


async def test_an_expired_access_token_is_closed_with_4001(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway(ACCESS_TOKEN_TTL="2")
    name, password = await people.user("viewer")
    pair = await sign_in(gateway, name, password)
    async with gateway.ws_connect("/v1/live", headers=bearer(pair["access_token"])) as ws:
        await ws.receive_json()
        msg = await ws.receive(timeout=15)  # the token lives 2 s
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 4001)
        assert msg.extra == "access token expired; refresh and reconnect"


async def test_close_where_closes_only_the_matching_viewers_with_4003(
    gateway: Client, people: Accounts
) -> None:
    revoked, password = await people.user("viewer")
    kept, _ = await people.user("viewer")
    token_of = {n: (await sign_in(gateway, n, password))["access_token"] for n in (revoked, kept)}
    async with (
        gateway.ws_connect("/v1/live", headers=bearer(token_of[revoked])) as gone,
        gateway.ws_connect("/v1/live", headers=bearer(token_of[kept])) as stays,
    ):
        await gone.receive_json()
        await stays.receive_json()
        splices = gateway.server.app[LIVE_SPLICES]
        closed = splices.close_where(
            lambda p: p.subject == f"user:{revoked}", 4003, "access revoked; sign in again"
        )
        assert closed == 1
        msg = await gone.receive(timeout=10)
        assert (msg.type, msg.data, msg.extra) == (
            aiohttp.WSMsgType.CLOSE,
            4003,
            "access revoked; sign in again",
        )
        await stays.send_str("still here")
        assert (await stays.receive_str(timeout=10)) == "echo:still here"
        assert splices.close_where(lambda p: p.subject == f"user:{revoked}", 4003, "again") == 0


async def test_revocation_on_one_instance_closes_viewers_on_another(
    start_gateway: StartGateway, people: Accounts
) -> None:
    one, two = await start_gateway(), await start_gateway()
    _, admin = await people.key("admin")
    name, password = await people.user("viewer")
    key_name, key = await people.key("viewer")
    token = (await sign_in(two, name, password))["access_token"]
    key_id = await people.pool.fetchval("SELECT key_id FROM gateway_keys WHERE name = $1", key_name)
    async with (
        two.ws_connect("/v1/live", headers=bearer(token)) as user_ws,
        two.ws_connect("/v1/live", headers={"X-API-Key": key}) as key_ws,
    ):
        await user_ws.receive_json()
        await key_ws.receive_json()
        resp = await one.patch(
            f"/v1/admin/users/{name}", json={"role": "analyst"}, headers={"X-API-Key": admin}
        )
        assert resp.status == 200
        msg = await user_ws.receive(timeout=5)
        assert (msg.type, msg.data, msg.extra) == (
            aiohttp.WSMsgType.CLOSE,
            4003,
            "access revoked; sign in again",
        )
        assert (await one.delete(f"/v1/admin/keys/{key_id}", headers={"X-API-Key": admin})).status == 204
        msg = await key_ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 4003)
