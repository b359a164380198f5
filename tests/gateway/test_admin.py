"""The admin API: users and API keys, role admin only, keys shown once and refused at once when revoked."""

from __future__ import annotations

from tests.gateway.conftest import Accounts, Client, StartGateway, assert_error, bearer, sign_in


async def _admin(people: Accounts) -> dict[str, str]:
    _, key = await people.key("admin")
    return {"X-API-Key": key}


async def test_create_list_and_patch_users(gateway: Client, people: Accounts) -> None:
    admin = await _admin(people)
    name = people.name("made")
    resp = await gateway.post("/v1/admin/users", json={"username": name, "password": "pw one", "role": "analyst"},
                              headers=admin)  # fmt: skip
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["username"] == name and made["role"] == "analyst" and made["disabled"] is False
    assert "password" not in made and "password_hash" not in made
    again = await gateway.post("/v1/admin/users", json={"username": name, "password": "x", "role": "viewer"},
                               headers=admin)  # fmt: skip
    await assert_error(again, 409, "conflict")
    await sign_in(gateway, name, "pw one")
    resp = await gateway.patch(f"/v1/admin/users/{name}", json={"role": "viewer"}, headers=admin)
    assert (await resp.json())["role"] == "viewer"
    await assert_error(await gateway.patch(f"/v1/admin/users/{name}", json={}, headers=admin), 400)
    await assert_error(
        await gateway.patch("/v1/admin/users/nobody-at-all", json={"disabled": True}, headers=admin), 404
    )
    # Keyset pagination visits every user once.
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await gateway.get(f"/v1/admin/users{query}", headers=admin)).json()
        seen += [u["username"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert name in seen and len(seen) == len(set(seen)) and seen == sorted(seen)


async def test_bad_admin_bodies_name_the_field(gateway: Client, people: Accounts) -> None:
    admin = await _admin(people)
    cases = [
        ({"username": "ok-name", "password": "pw", "role": "superuser"}, "role"),
        ({"username": "bad name!", "password": "pw", "role": "viewer"}, "username"),
        ({"username": "ok-name", "password": "", "role": "viewer"}, "password"),
        ({"username": "ok-name", "role": "viewer"}, "password"),
    ]
    for body, field in cases:
        error = await assert_error(await gateway.post("/v1/admin/users", json=body, headers=admin), 400)
        assert field in error["message"], error
    error = await assert_error(
        await gateway.post("/v1/admin/keys", json={"name": "k", "role": "root"}, headers=admin), 400
    )
    assert "role" in error["message"]
    await assert_error(await gateway.get("/v1/admin/keys?cursor=%%%", headers=admin), 400)
    await assert_error(await gateway.get("/v1/admin/keys?limit=0", headers=admin), 400)


async def test_keys_are_shown_once_and_revoked_within_a_request(
    start_gateway: StartGateway, people: Accounts
) -> None:
    one, two = await start_gateway(), await start_gateway()
    admin = await _admin(people)
    name = people.name("feedkey")
    resp = await one.post("/v1/admin/keys", json={"name": name, "role": "feed"}, headers=admin)
    assert resp.status == 201 and resp.headers["Cache-Control"] == "no-store"
    made = await resp.json()
    key, key_id = made["key"], made["key_id"]
    assert key.startswith(made["prefix"]) and made["role"] == "feed"
    assert (await two.post("/v1/events", json={}, headers={"X-API-Key": key})).status == 200
    listing = await (await one.get("/v1/admin/keys?limit=500", headers=admin)).text()
    assert key_id in listing and key not in listing and key.split("_", 2)[2] not in listing
    assert (await one.delete(f"/v1/admin/keys/{key_id}", headers=admin)).status == 204
    # The other instance had the key cached; the very next request is refused.
    await assert_error(await two.post("/v1/events", json={}, headers={"X-API-Key": key}), 401, "unauthorized")
    await assert_error(await one.delete(f"/v1/admin/keys/{key_id}", headers=admin), 404)
    page = await (await one.get("/v1/admin/keys?limit=500", headers=admin)).json()
    row = next(k for k in page["items"] if k["key_id"] == key_id)
    assert row["revoked"] is True and row["revoked_at"]


async def test_a_replaced_key_stops_working(start_gateway: StartGateway, people: Accounts) -> None:
    one, two = await start_gateway(), await start_gateway()
    admin = await _admin(people)
    name = people.name("rotating")
    old = await (
        await one.post("/v1/admin/keys", json={"name": name, "role": "viewer"}, headers=admin)
    ).json()
    assert (await two.get("/v1/teams", headers={"X-API-Key": old["key"]})).status == 200
    new = await (
        await one.post("/v1/admin/keys", json={"name": name, "role": "viewer"}, headers=admin)
    ).json()
    assert new["replaced_key_id"] == old["key_id"]
    await assert_error(await two.get("/v1/teams", headers={"X-API-Key": old["key"]}), 401)
    assert (await two.get("/v1/teams", headers={"X-API-Key": new["key"]})).status == 200


async def test_only_admins_reach_the_admin_api(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("analyst")
    token = (await sign_in(gateway, name, password))["access_token"]
    _, feed = await people.key("feed")
    for headers in (bearer(token), {"X-API-Key": feed}):
        await assert_error(await gateway.get("/v1/admin/users", headers=headers), 403, "forbidden")
        await assert_error(
            await gateway.post("/v1/admin/keys", json={"name": "x", "role": "admin"}, headers=headers), 403
        )
    await assert_error(await gateway.get("/v1/admin/keys"), 401)


async def test_revoking_a_key_while_redis_is_away_still_takes_effect(
    start_gateway: StartGateway, people: Accounts
) -> None:
    gateway = await start_gateway(wait_redis=False, REDIS_URL="redis://127.0.0.1:1/0")
    admin = await _admin(people)
    name, key = await people.key("feed")
    assert (await gateway.post("/v1/events", json={}, headers={"X-API-Key": key})).status == 200
    key_id = await people.pool.fetchval("SELECT key_id FROM gateway_keys WHERE name = $1", name)
    assert (await gateway.delete(f"/v1/admin/keys/{key_id}", headers=admin)).status == 204
    await assert_error(await gateway.post("/v1/events", json={}, headers={"X-API-Key": key}), 401)
