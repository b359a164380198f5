"""Refresh-token families and revocation: rotation, reuse detection, logout and admin changes on every instance."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import Accounts, Client, StartGateway, assert_error, bearer, sign_in


async def _refresh(gateway: Client, token: str) -> Any:
    return await gateway.post("/v1/auth/refresh", json={"refresh_token": token})


async def _works(gateway: Client, access: str) -> bool:
    return (await gateway.get("/v1/teams", headers=bearer(access))).status == 200


async def test_every_refresh_rotates(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    first = await sign_in(gateway, name, password)
    resp = await _refresh(gateway, first["refresh_token"])
    assert resp.status == 200
    second = await resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["refresh_token"].split(".")[0] == first["refresh_token"].split(".")[0]  # same family
    assert await _works(gateway, second["access_token"])


async def test_reusing_a_spent_refresh_token_revokes_the_family(gateway: Client, people: Accounts) -> None:
    name, password = await people.user("viewer")
    stolen = await sign_in(gateway, name, password)
    other_session = await sign_in(gateway, name, password)
    legit = await (await _refresh(gateway, stolen["refresh_token"])).json()
    assert await _works(gateway, legit["access_token"])
    # The thief replays the token the client already spent: the whole family dies at once.
    await assert_error(await _refresh(gateway, stolen["refresh_token"]), 401, "unauthorized")
    await assert_error(await _refresh(gateway, legit["refresh_token"]), 401, "unauthorized")
    assert not await _works(gateway, legit["access_token"])
    assert not await _works(gateway, stolen["access_token"])
    # Another family of the same user is untouched.
    assert await _works(gateway, other_session["access_token"])
    assert (await _refresh(gateway, other_session["refresh_token"])).status == 200


async def test_unknown_and_malformed_refresh_tokens_are_401(gateway: Client) -> None:
    for token in ("nope", "a.b", "." * 3, "x" * 199):
        await assert_error(await _refresh(gateway, token), 401)
    await assert_error(await _refresh(gateway, "x" * 201), 400)


async def test_logout_ends_every_session_on_every_instance(
    start_gateway: StartGateway, people: Accounts
) -> None:
    one, two = await start_gateway(), await start_gateway()
    name, password = await people.user("analyst")
    a, b = await sign_in(one, name, password), await sign_in(two, name, password)
    assert await _works(two, a["access_token"]) and await _works(one, b["access_token"])
    resp = await one.post("/v1/auth/logout", headers=bearer(a["access_token"]))
    assert resp.status == 204
    for gw in (one, two):
        for pair in (a, b):
            assert not await _works(gw, pair["access_token"])
            await assert_error(await _refresh(gw, pair["refresh_token"]), 401)
    # Signing in again works at once.
    assert await _works(two, (await sign_in(two, name, password))["access_token"])


async def _admin(gateway: Client, people: Accounts) -> dict[str, str]:
    _, key = await people.key("admin")
    return {"X-API-Key": key}


async def test_password_role_and_disable_changes_revoke_everywhere(
    start_gateway: StartGateway, people: Accounts
) -> None:
    one, two = await start_gateway(), await start_gateway()
    admin = await _admin(one, people)
    name, password = await people.user("viewer")
    for change in ({"password": "a new password"}, {"role": "analyst"}, {"disabled": True}):
        pair = await sign_in(two, name, password)
        password = "a new password"
        assert await _works(two, pair["access_token"])
        resp = await one.patch(f"/v1/admin/users/{name}", json=change, headers=admin)
        assert resp.status == 200, await resp.text()
        # The next request on the other instance is refused: no cache to wait out.
        assert not await _works(two, pair["access_token"]), change
        await assert_error(await _refresh(two, pair["refresh_token"]), 401)
    # Disabled: cannot sign in; re-enabled: can.
    resp = await two.post("/v1/auth/token", json={"username": name, "password": "a new password"})
    await assert_error(resp, 401)
    assert (await one.patch(f"/v1/admin/users/{name}", json={"disabled": False}, headers=admin)).status == 200
    pair = await sign_in(two, name, "a new password")
    assert pair and await _works(one, pair["access_token"])


async def test_an_api_key_cannot_log_out(gateway: Client, people: Accounts) -> None:
    _, key = await people.key("viewer")
    await assert_error(await gateway.post("/v1/auth/logout", headers={"X-API-Key": key}), 400)
