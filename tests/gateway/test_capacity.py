"""No choke points: REST has pools of its own per upstream, WebSockets use none, a full pool is a 503."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from tests.gateway.conftest import Accounts, Client, StartGateway, assert_error
from tests.gateway.upstream import HOLDS, Hold

BURST = 300


async def test_a_burst_of_viewers_connects_and_rest_still_answers(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    headers = {"X-API-Key": key}
    url = gateway.make_url("/v1/live")
    # A session of its own: the test client's pool of 100 would be the choke point here.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as viewers:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        try:
            async with asyncio.timeout(60):
                connects = (viewers.ws_connect(url, headers=headers) for _ in range(BURST))
                sockets = list(await asyncio.gather(*connects))
                hellos = await asyncio.gather(*(ws.receive_json() for ws in sockets))
            assert len(hellos) == BURST and all(h["subject"].startswith("key:") for h in hellos)
            async with asyncio.timeout(30):  # with 300 sockets open the pool is still free for REST
                resp = await gateway.get("/v1/teams", headers=headers)
            assert resp.status == 200
            assert (await resp.json())["path"] == "/v1/teams"
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))


async def test_a_full_pool_is_a_503_with_retry_after_not_a_wait(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway(GATEWAY_UPSTREAM_CONNECTIONS="1", GATEWAY_UPSTREAM_ACQUIRE_TIMEOUT="0.2")
    _, key = await people.key("viewer")
    headers = {"X-API-Key": key}
    hold_id = uuid.uuid4().hex
    held = HOLDS.setdefault(hold_id, Hold())
    first = asyncio.create_task(gateway.get(f"/v1/plays/hold?id={hold_id}", headers=headers))
    try:
        async with asyncio.timeout(10):
            await held.arrived.wait()  # the query pool's one connection is now taken
            resp = await gateway.get("/v1/plays", headers=headers)
        error = await assert_error(resp, 503, "upstream_busy")
        assert "query" in error["message"]
        assert resp.headers["Retry-After"] == "1"
        async with asyncio.timeout(10):  # other upstreams and the WebSocket path are not held up
            assert (await gateway.get("/v1/schema/events")).status == 200
            async with gateway.ws_connect("/v1/live", headers=headers) as ws:
                assert (await ws.receive_json())["subject"].startswith("key:")
        metrics = await (await gateway.get("/metrics")).text()
        assert 'snapline_gateway_upstream_busy_total{upstream="query"}' in metrics
    finally:
        held.release.set()
        resp = await asyncio.wait_for(first, 10)
        HOLDS.pop(hold_id, None)
    assert resp.status == 200
    assert (await gateway.get("/v1/plays", headers=headers)).status == 200  # free again
