"""The audit log through a real gateway in front of a real ingest: what admins and feeds did, by whom,
from where, under which request id; filters and cursors; admin only; append-only; no secrets."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
import pytest

from services.gateway.auditing import CURSOR
from services.gateway.keys import POSTGRES
from tests import factories as f
from tests.gateway.conftest import Accounts, Client, StartGateway, assert_error
from tests.gateway.test_cli import snapline
from tests.ingest.conftest import import_options, start_ingest, wait_job  # noqa: F401  (fixtures)

DEADLINE = 10.0  # seconds for a record to reach PostgreSQL (the writer drains in milliseconds)


async def _records(gateway: Client, headers: dict[str, str], query: str) -> dict[str, Any]:
    resp = await gateway.get(f"/v1/admin/audit?{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _wait_for(
    gateway: Client, headers: dict[str, str], request_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """The records of one request, once `count` of them are written (polled, with a deadline)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            items: list[dict[str, Any]] = (await _records(gateway, headers, f"request_id={request_id}"))[
                "items"
            ]
            if len(items) >= count:
                return items
            await asyncio.sleep(0.05)


async def _send(gateway: Client, method: str, path: str, headers: dict[str, str], rid: str, **kw: Any) -> Any:
    resp = await gateway.request(method, path, headers={**headers, "X-Request-ID": rid}, **kw)
    assert resp.headers["X-Request-ID"] == rid
    return resp


@pytest.fixture
async def stack(start_gateway: StartGateway, start_ingest: Any) -> Client:  # noqa: F811
    """A gateway whose ingest upstream is a real ingest on this test's topics and schema."""
    ingest = await start_ingest()
    return await start_gateway(INGEST_URL=str(ingest.make_url("")).rstrip("/"))


async def test_admin_and_feed_actions_are_recorded(stack: Client, people: Accounts, unique: str) -> None:
    gateway = stack
    admin_name, admin_key = await people.key("admin")
    admin = {"X-API-Key": admin_key}
    rid = f"audit-{unique}"
    # An admin makes a feed key and a user, then changes the user's password.
    feed_name, user_name = people.name("feed"), people.name("user")
    resp = await _send(
        gateway, "POST", "/v1/admin/keys", admin, f"{rid}-key", json={"name": feed_name, "role": "feed"}
    )
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    feed = {"X-API-Key": made["key"]}
    secret_password, new_password = f"pw-{unique}-first", f"pw-{unique}-second"
    resp = await _send(gateway, "POST", "/v1/admin/users", admin, f"{rid}-user",
                       json={"username": user_name, "password": secret_password, "role": "viewer"})  # fmt: skip
    assert resp.status == 201
    resp = await _send(gateway, "PATCH", f"/v1/admin/users/{user_name}", admin, f"{rid}-pw",
                       json={"password": new_password})  # fmt: skip
    assert resp.status == 200
    conflict = await _send(gateway, "POST", "/v1/admin/users", admin, f"{rid}-dup",
                           json={"username": user_name, "password": "x", "role": "viewer"})  # fmt: skip
    assert conflict.status == 409
    # The feed posts a play, a correction of it and a delete of it, then imports a file.
    g, p = f.game(f"9{unique[:9]}"), f.play("77")
    for suffix, event in (
        ("play", f.recorded(g, p)),
        ("fix", f.corrected(g, p, 2)),
        ("del", f.deleted(g, "77", 3)),
    ):
        resp = await _send(gateway, "POST", "/v1/events", {**feed, "Content-Type": "application/json"},
                           f"{rid}-{suffix}", data=msgspec.json.encode(event))  # fmt: skip
        assert resp.status == 202, await resp.text()
    # A request mixing kinds makes a record per kind; one ingest refuses whole, a record with its error.
    g2 = f.game(f"8{unique[:9]}")
    mixed = [
        f.recorded(g2, f.play("1")),
        f.recorded(g2, f.play("2", sequence=2)),
        f.corrected(g2, f.play("1"), 2),
    ]
    resp = await _send(gateway, "POST", "/v1/events", {**feed, "Content-Type": "application/json"},
                       f"{rid}-mixed", data=msgspec.json.encode(mixed))  # fmt: skip
    assert resp.status == 202, await resp.text()
    resp = await _send(gateway, "POST", "/v1/events", {**feed, "Content-Type": "application/json"},
                       f"{rid}-bad", data=b'[{"type": "play_recorded"}]')  # fmt: skip
    assert resp.status == 422
    resp = await _send(gateway, "POST", "/v1/imports?format=gamecenter&name=broken.json.gz",
                       {**feed, "Content-Type": "application/gzip"}, f"{rid}-import", data=b"not a gzip file")  # fmt: skip
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["job_id"]
    await wait_job(_Feed(gateway, feed), job_id, timeout=30)

    # Each action is there with its actor, address, request id and outcome.
    [key_made] = await _wait_for(gateway, admin, f"{rid}-key")
    assert key_made["action"] == "admin.key.create" and key_made["target"] == made["key_id"]
    assert key_made["actor"] == f"key:{admin_name}" and key_made["role"] == "admin"
    assert key_made["actor_key_id"] and key_made["address"] == "127.0.0.1" and key_made["status"] == 201
    assert key_made["detail"]["name"] == feed_name and key_made["detail"]["role"] == "feed"
    [user_made] = await _wait_for(gateway, admin, f"{rid}-user")
    assert (user_made["action"], user_made["target"], user_made["status"]) == (
        "admin.user.create",
        user_name,
        201,
    )
    [changed] = await _wait_for(gateway, admin, f"{rid}-pw")
    assert (changed["action"], changed["target"], changed["detail"]["changed"]) == (
        "admin.user.update", user_name, ["password"])  # fmt: skip
    [dup] = await _wait_for(gateway, admin, f"{rid}-dup")
    assert dup["status"] == 409 and dup["detail"]["error"] == "conflict"
    for suffix, action in (("play", "feed.events"), ("fix", "feed.correction"), ("del", "feed.delete")):
        [row] = await _wait_for(gateway, admin, f"{rid}-{suffix}")
        assert row["action"] == action and row["actor"] == f"key:{feed_name}" and row["role"] == "feed"
        assert row["actor_key_id"] == made["key_id"] and row["status"] == 202 and row["target"] == g.game_id
        assert row["detail"]["events"] == 1 and row["detail"]["games"] == [g.game_id]
        assert row["detail"]["request"] == {"accepted": 1, "duplicates": 0, "rejected": 0}
        if action != "feed.events":
            assert row["detail"]["plays"] == ["77"]
    by_action = {r["action"]: r for r in await _wait_for(gateway, admin, f"{rid}-mixed", count=2)}
    assert set(by_action) == {"feed.events", "feed.correction"}
    assert by_action["feed.events"]["detail"]["events"] == 2 and by_action["feed.correction"]["detail"][
        "plays"
    ] == ["1"]
    assert by_action["feed.events"]["detail"]["request"] == {"accepted": 3, "duplicates": 0, "rejected": 0}
    [bad] = await _wait_for(gateway, admin, f"{rid}-bad")
    assert (bad["action"], bad["status"], bad["detail"]) == ("feed.events", 422, {"error": "invalid_events"})
    [imported] = await _wait_for(gateway, admin, f"{rid}-import")
    assert imported["action"] == "feed.import" and imported["target"] == job_id and imported["status"] == 202
    assert imported["detail"]["files"] == 1 and imported["detail"]["names"] == ["broken.json.gz"]

    # Filters: actor, action prefix, status, time window; newest first.
    mine = (await _records(gateway, admin, f"actor={feed_name}"))["items"]
    assert [r["request_id"].removeprefix(f"{rid}-") for r in mine] == [
        "import", "bad", "mixed", "mixed", "del", "fix", "play"]  # fmt: skip
    feed_rows = (await _records(gateway, admin, f"actor=key:{admin_name}&action=admin.user"))["items"]
    assert {r["request_id"] for r in feed_rows} == {f"{rid}-user", f"{rid}-pw", f"{rid}-dup"}
    refused = (await _records(gateway, admin, f"actor={admin_name}&status=409"))["items"]
    assert [r["request_id"] for r in refused] == [f"{rid}-dup"]
    window = f"since={key_made['at'].replace('+', '%2B')}&until={imported['at'].replace('+', '%2B')}"
    between = (await _records(gateway, admin, f"actor={feed_name}&{window}"))["items"]
    assert [r["request_id"].removeprefix(f"{rid}-") for r in between] == [
        "bad",
        "mixed",
        "mixed",
        "del",
        "fix",
        "play",
    ]

    # The cursor visits every record of a filter once, newest first (the admin's own reads of the
    # log are recorded too, so the window ends before the first of them).
    seen: list[dict[str, Any]] = []
    query = f"actor={admin_name}&limit=1&until={imported['at'].replace('+', '%2B')}"
    page = await _records(gateway, admin, query)
    while True:
        seen += page["items"]
        if page["next_cursor"] is None:
            break
        page = await _records(gateway, admin, f"{query}&cursor={page['next_cursor']}")
    assert [r["request_id"] for r in seen] == [f"{rid}-dup", f"{rid}-pw", f"{rid}-user", f"{rid}-key"]
    reads = (await _records(gateway, admin, f"actor={admin_name}&action=admin.audit.list&limit=500"))["items"]
    assert reads and all(r["status"] == 200 and r["target"] is None for r in reads)

    # No secret of any of it is in any record.
    everything = [
        r
        for who in (admin_name, feed_name)
        for r in (await _records(gateway, admin, f"actor={who}&limit=500"))["items"]
    ]
    text = msgspec.json.encode(everything).decode()
    for secret in (admin_key, made["key"], secret_password, new_password):
        assert secret not in text


class _Feed:
    """`wait_job` polls through the gateway with the feed's key."""

    def __init__(self, gateway: Client, headers: dict[str, str]) -> None:
        self.gateway, self.headers = gateway, headers

    async def get(self, path: str) -> Any:
        return await self.gateway.get(path, headers=self.headers)


async def test_only_admins_read_and_bad_parameters_are_named(gateway: Client, people: Accounts) -> None:
    _, feed_key = await people.key("feed")
    await assert_error(
        await gateway.get("/v1/admin/audit", headers={"X-API-Key": feed_key}), 403, "forbidden"
    )
    await assert_error(await gateway.get("/v1/admin/audit"), 401)
    _, admin_key = await people.key("admin")
    admin = {"X-API-Key": admin_key}
    for query, field in (
        ("since=yesterday", "since"), ("until=2026-01-01T00:00:00", "until"), ("status=abc", "status"),
        ("status=99", "status"), ("limit=0", "limit"), ("cursor=nonsense", "cursor"), ("action=a%20b", "action"),
        ("colour=red", "colour"), ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("cursor=" + CURSOR.encode(datetime(2026, 1, 1), 5), "cursor"),
        ("cursor=" + CURSOR.encode(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), 5), "cursor"), ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
    ):  # fmt: skip
        error = await assert_error(await gateway.get(f"/v1/admin/audit?{query}", headers=admin), 400)
        assert any(d.get("field") == field for d in error["details"]), (query, error)


async def test_the_services_role_cannot_change_or_remove_records(gateway: Client, people: Accounts) -> None:
    _, admin_key = await people.key("admin")
    resp = await gateway.get(
        "/v1/admin/users?limit=1", headers={"X-API-Key": admin_key, "X-Request-ID": "ro-1"}
    )
    assert resp.status == 200
    await _wait_for(gateway, {"X-API-Key": admin_key}, "ro-1")
    pool = gateway.server.app[POSTGRES].get().primary  # the gateway's own connections and role
    for statement in (
        "UPDATE audit_log SET status = 200 WHERE request_id = 'ro-1'",
        "DELETE FROM audit_log WHERE request_id = 'ro-1'",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(statement)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE request_id = 'ro-1'") == 1


async def test_the_cli_lists_and_filters_the_log(gateway: Client, people: Accounts, unique: str) -> None:
    admin_name, admin_key = await people.key("admin")
    target = people.name("cli")
    resp = await gateway.post("/v1/admin/keys", json={"name": target, "role": "viewer"},
                              headers={"X-API-Key": admin_key, "X-Request-ID": f"cli-{unique}"})  # fmt: skip
    assert resp.status == 201
    await _wait_for(gateway, {"X-API-Key": admin_key}, f"cli-{unique}")
    code, out, err = await snapline(gateway, "audit", "--actor", admin_name, "--action", "admin.key.create",
                                    "--json", key=admin_key)  # fmt: skip
    assert code == 0, err
    [line] = out.splitlines()
    record = msgspec.json.decode(line)
    assert record["request_id"] == f"cli-{unique}" and record["detail"]["name"] == target
    code, out, err = await snapline(gateway, "audit", "--since", "yesterday", key=admin_key)
    assert code == 1 and "since" in err and not out
