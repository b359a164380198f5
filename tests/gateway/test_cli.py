"""`snapline user add`, `snapline key add|revoke|list`, run as the installed command would be, through the admin API."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.gateway.conftest import Accounts, Client, assert_error, sign_in


async def snapline(
    gateway: Client | None, *args: str, stdin: str = "", key: str | None = None
) -> tuple[int, str, str]:
    """Run the CLI in a subprocess against `gateway`: its exit code, stdout and stderr."""
    env = dict(os.environ)
    env.pop("SNAPLINE_API_KEY", None)
    if gateway is not None:
        env["GATEWAY_URL"] = str(gateway.make_url("")).rstrip("/")
    if key:
        env["SNAPLINE_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "snapline_cli.main", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _admin_key(people: Accounts) -> str:
    return (await people.key("admin"))[1]


async def test_user_add_then_sign_in_and_update(gateway: Client, people: Accounts) -> None:
    admin = await _admin_key(people)
    name = people.name("cli")
    code, out, err = await snapline(
        gateway, "user", "add", name, "--role", "analyst", stdin="first pass\n", key=admin
    )
    assert code == 0, err
    assert "created" in out
    first = await sign_in(gateway, name, "first pass")
    code, out, _ = await snapline(
        gateway, "user", "add", name, "--role", "viewer", stdin="second pass\n", key=admin
    )
    assert code == 0 and "updated" in out
    resp = await gateway.post("/v1/auth/token", json={"username": name, "password": "first pass"})
    await assert_error(resp, 401)
    # The change went through the admin API, so the old session is gone too.
    await assert_error(
        await gateway.get("/v1/teams", headers={"Authorization": f"Bearer {first['access_token']}"}), 401
    )
    pair = await sign_in(gateway, name, "second pass")
    resp = await gateway.post(
        "/v1/events", json={}, headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    await assert_error(resp, 403)


async def test_key_add_prints_the_key_last_and_revoke_ends_it(gateway: Client, people: Accounts) -> None:
    admin = await _admin_key(people)
    name = people.name("cli")
    code, out, err = await snapline(gateway, "key", "add", name, "--role", "feed", key=admin)
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("snp_") and " " not in key
    assert (await gateway.post("/v1/events", json={}, headers={"X-API-Key": key})).status == 200
    stored = await people.pool.fetchval("SELECT key_sha256 FROM gateway_keys WHERE name = $1", name)
    assert key not in stored
    key_id = err.split()[2]
    code, out, err = await snapline(gateway, "key", "list", key=admin)
    assert code == 0 and key_id in out and key not in out
    code, out, err = await snapline(gateway, "key", "revoke", key_id, key=admin)
    assert code == 0, err
    await assert_error(await gateway.post("/v1/events", json={}, headers={"X-API-Key": key}), 401)


async def test_without_an_admin_key_it_says_what_to_set(gateway: Client, people: Accounts) -> None:
    code, _, err = await snapline(gateway, "key", "add", people.name("cli"), "--role", "feed")
    assert code != 0 and "SNAPLINE_API_KEY" in err
    _, viewer = await people.key("viewer")
    code, _, err = await snapline(gateway, "key", "add", people.name("cli"), "--role", "feed", key=viewer)
    assert code != 0 and "refused" in err


async def test_bad_role_names_the_allowed_roles(people: Accounts) -> None:
    code, _, err = await snapline(None, "key", "add", people.name("cli"), "--role", "superuser")
    assert code != 0
    assert all(role in err for role in ("admin", "feed", "analyst", "viewer"))


async def test_empty_password_is_refused(gateway: Client, people: Accounts) -> None:
    name = people.name("cli")
    code, _, err = await snapline(gateway, "user", "add", name, "--role", "viewer", stdin="\n", key="x")
    assert code != 0 and "empty" in err
    assert await people.pool.fetchval("SELECT count(*) FROM gateway_users WHERE username = $1", name) == 0


async def test_bad_name_is_refused(people: Accounts) -> None:
    code, _, err = await snapline(None, "user", "add", "bad name!", "--role", "viewer", stdin="pw\n")
    assert code != 0 and "invalid name" in err
