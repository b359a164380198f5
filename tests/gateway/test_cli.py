"""`snapline user add` and `snapline key add`, run as the installed command would be."""

from __future__ import annotations

import asyncio
import sys

from tests.gateway.conftest import Accounts, Client, assert_error, sign_in


async def snapline(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run the CLI in a subprocess: its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "snapline_cli.main", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_user_add_then_sign_in_and_update(gateway: Client, people: Accounts) -> None:
    name = people.name("cli")
    code, out, err = await snapline("user", "add", name, "--role", "analyst", stdin="first pass\n")
    assert code == 0, err
    assert "created" in out
    await sign_in(gateway, name, "first pass")
    code, out, _ = await snapline("user", "add", name, "--role", "viewer", stdin="second pass\n")
    assert code == 0 and "updated" in out
    resp = await gateway.post("/v1/auth/token", json={"username": name, "password": "first pass"})
    await assert_error(resp, 401)
    pair = await sign_in(gateway, name, "second pass")
    resp = await gateway.post(
        "/v1/events", json={}, headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    await assert_error(resp, 403)


async def test_key_add_prints_the_key_last(gateway: Client, people: Accounts) -> None:
    name = people.name("cli")
    code, out, err = await snapline("key", "add", name, "--role", "feed")
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("snp_") and " " not in key
    resp = await gateway.post("/v1/events", json={}, headers={"X-API-Key": key})
    assert resp.status == 200
    stored = await people.pool.fetchval("SELECT key_sha256 FROM gateway_api_keys WHERE name = $1", name)
    assert key not in stored


async def test_bad_role_names_the_allowed_roles(people: Accounts) -> None:
    code, _, err = await snapline("key", "add", people.name("cli"), "--role", "superuser")
    assert code != 0
    assert all(role in err for role in ("admin", "feed", "analyst", "viewer"))


async def test_empty_password_is_refused(people: Accounts) -> None:
    name = people.name("cli")
    code, _, err = await snapline("user", "add", name, "--role", "viewer", stdin="\n")
    assert code != 0 and "empty" in err
    assert await people.pool.fetchval("SELECT count(*) FROM gateway_users WHERE username = $1", name) == 0


async def test_bad_name_is_refused(people: Accounts) -> None:
    code, _, err = await snapline("user", "add", "bad name!", "--role", "viewer", stdin="pw\n")
    assert code != 0 and "invalid name" in err
