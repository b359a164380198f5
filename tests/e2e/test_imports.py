"""An import job through the gateway: a gzipped tar of real GameCenter files is uploaded,
the job is followed to its end, and its plays are queryable."""

from __future__ import annotations

import aiohttp

from tests.ingest.conftest import game, plays, tar_of
from tests.stack import GATEWAY, eventually

GOOD = "2019090800.json.gz"  # the sample game `make up` loads: re-importing it is harmless
EMPTY = "2018082351.json.gz"  # one of the package's two empty files


async def test_an_upload_through_the_gateway_imports_and_names_the_bad_file(
    stack_keys: dict[str, str],
) -> None:
    body = tar_of({GOOD: game(GOOD), EMPTY: game(EMPTY)})
    async with aiohttp.ClientSession(GATEWAY, headers={"X-API-Key": stack_keys["feed"]}) as http:
        resp = await http.post("/v1/imports?format=gamecenter", data=body,
                               headers={"Content-Type": "application/gzip"})  # fmt: skip
        assert resp.status == 202, await resp.text()
        job_id = (await resp.json())["job_id"]

        async def finished() -> dict[str, object] | None:
            job = await (await http.get(f"/v1/imports/{job_id}")).json()
            return job if job["status"] in ("succeeded", "partial", "failed") else None

        job = await eventually(finished, timeout=60)
        assert job["status"] == "partial"
        assert (job["files_total"], job["files_done"], job["events_total"]) == (2, 2, plays(GOOD))
        assert [e["file"] for e in job["errors"]] == [EMPTY]
        assert "empty" in job["errors"][0]["error"]

        async def queryable() -> bool:
            r = await http.get("/v1/plays", params={"game_id": "2019090800", "limit": "500"})
            return len((await r.json())["items"]) >= plays(GOOD)

        await eventually(queryable)
        viewer = await http.post("/v1/imports?format=gamecenter", data=body,
                                 headers={"X-API-Key": stack_keys["viewer"], "Content-Type": "application/gzip"})  # fmt: skip
        assert viewer.status == 403
