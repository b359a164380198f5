"""Signing keys: per installation, refused when they ship in the repository, rotated with overlap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
import pytest

from services.gateway import keyset
from services.gateway.app import create_app
from services.gateway.keys import KEYSET
from shared.config import Settings, SettingsError
from tests.gateway.conftest import Accounts, StartGateway, bearer, sign_in

DEV_KEYS = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "jwt-keys.dev.json"


def test_ensure_writes_an_owner_only_file_once(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keys.json"
    assert keyset.main(["ensure", str(path)]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = keyset.read(path)
    assert keyset.main(["ensure", str(path)]) == 0
    assert [k.kid for k in keyset.read(path)] == [k.kid for k in first]


def test_the_shipped_key_is_refused_unless_development(make_settings: object) -> None:
    assert DEV_KEYS.exists()
    with pytest.raises(keyset.KeySetError, match="ships in the repository"):
        keyset.KeySet(str(DEV_KEYS))
    assert keyset.KeySet(str(DEV_KEYS), development=True).keys


def test_no_key_file_no_gateway(make_settings: object) -> None:
    settings = make_settings("gateway", JWT_KEYS_FILE="")  # type: ignore[operator]
    with pytest.raises(keyset.KeySetError, match="JWT_KEYS_FILE is not set"):
        create_app(settings)
    with pytest.raises(keyset.KeySetError, match="ships in the repository"):
        create_app(make_settings("gateway", JWT_KEYS_FILE=str(DEV_KEYS)))  # type: ignore[operator]
    with pytest.raises(SettingsError, match="JWT_SECRET is no longer used"):
        Settings.from_env("gateway", {"JWT_SECRET": "dev-only-change-me-snapline-jwt-secret"})


def test_prune_keeps_the_signing_key_and_unexpired_ones() -> None:
    keys = keyset.rotate(keyset.rotate([keyset.new_key(1000)], now=2000), now=3000)
    assert [k.retired for k in keys] == [2000, 3000, None]
    assert [k.kid for k in keyset.prune(keys, max_token_ttl=900, now=3500)] == [keys[1].kid, keys[2].kid]
    assert [k.kid for k in keyset.prune(keys, max_token_ttl=900, now=9999)] == [keys[2].kid]


async def test_rotation_overlaps(start_gateway: StartGateway, people: Accounts, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyset.write(path, [keyset.new_key()])
    gateway = await start_gateway(JWT_KEYS_FILE=str(path))
    name, password = await people.user("viewer")
    old = (await sign_in(gateway, name, password))["access_token"]
    keyset.write(path, keyset.rotate(keyset.read(path)))
    os.utime(path, (1, 1))  # a different mtime even within the file system's clock granularity
    assert gateway.app[KEYSET].reload()
    new = (await sign_in(gateway, name, password))["access_token"]
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    jwks = await (await gateway.get("/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 2
    for token in (old, new):  # the retired key still verifies what it signed
        assert (await gateway.get("/v1/teams", headers=bearer(token))).status == 200
