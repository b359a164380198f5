"""The security suite uses the gateway's fixtures: an in-process gateway on the stand-in upstream,
real PostgreSQL and Redis, users and keys removed afterwards."""

from __future__ import annotations

from tests.gateway.conftest import gateway, jwt_keys_file, people, pool, start_gateway, upstream

__all__ = ["gateway", "jwt_keys_file", "people", "pool", "start_gateway", "upstream"]
