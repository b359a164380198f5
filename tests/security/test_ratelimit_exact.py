"""Rate limits are exact across gateway instances and client processes: one budget, spent once."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.gateway.conftest import Accounts, StartGateway

CLIENT = """
import asyncio, json, sys
import aiohttp

async def main(urls, key, n):
    statuses = []
    async with aiohttp.ClientSession() as http:
        async def one(i):
            async with http.get(urls[i % len(urls)] + "/v1/teams", headers={"X-API-Key": key}) as r:
                statuses.append(r.status)
        await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps(statuses))

asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


async def test_one_budget_across_two_gateways_and_three_processes(
    start_gateway: StartGateway, people: Accounts
) -> None:
    limit, per_process = 25, 20
    gateways = [await start_gateway(RATE_LIMIT_PER_MINUTE=str(limit)) for _ in range(2)]
    urls = [str(g.make_url("")).rstrip("/") for g in gateways]
    _, key = await people.key("viewer")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENT,
            json.dumps(urls),
            key,
            str(per_process),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    statuses: list[int] = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        statuses += json.loads(out)
    assert len(statuses) == 3 * per_process
    # 60 requests within a second or two: the minute's budget of 25 passes, not one more (a
    # request earned back during the run is at most one per 60/25 = 2.4 s).
    assert limit <= statuses.count(200) <= limit + 1, statuses
    assert set(statuses) == {200, 429}
