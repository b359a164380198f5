"""Every route of the table against every kind of caller: the gate answers as the route's Guard says.

The matrix is generated from `routes.ROUTES`, so a new route is checked the moment it exists,
and a route cannot exist without a Guard. Callers: nobody, a viewer and an analyst (access
tokens), a feed key and an admin key, a revoked key, and a token of a user since disabled.
Expected: 401 on a non-public route for the three without a valid credential, 403 when the
role is not among the guard's roles, otherwise "passes the gate": neither 401/403 nor 5xx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp
import pytest

from services.gateway import accounts, openapi
from services.gateway.accounts import ROLES
from services.gateway.auth import Guard
from services.gateway.routes import ROUTES, Route
from tests.gateway.conftest import Accounts, Client, StartGateway, bearer, sign_in

CALLERS = ("anonymous", "viewer", "analyst", "feed key", "admin key", "revoked key", "disabled user")
UNAUTHENTICATED = frozenset({"anonymous", "revoked key", "disabled user"})
SERVICE_ROUTES = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
# Logging out ends the caller's sessions: it goes last, so it cannot change the answers after it.
ORDERED = sorted(ROUTES, key=lambda r: r.path == "/v1/auth/logout")


@dataclass(frozen=True)
class Caller:
    name: str
    role: str | None  # None: no valid credential
    headers: dict[str, str]


def expected(route: Route, caller: Caller) -> str:
    """'401', '403' or 'pass' for this caller on this route."""
    if not route.guard.roles:
        return "pass"
    if caller.role is None:
        return "401"
    return "pass" if caller.role in route.guard.roles else "403"


def outcome(status: int) -> str:
    if status in (401, 403):
        return str(status)
    return "5xx" if status >= 500 else "pass"


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def _status(client: Client, route: Route, caller: Caller) -> int:
    path = concrete(route.path)
    if route.status == 101:
        try:
            ws = await client.ws_connect(path, headers=caller.headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101
    body = {"json": {}} if route.method in ("POST", "PATCH", "PUT") else {}
    async with client.request(route.method, path, headers=caller.headers, **body) as resp:
        await resp.read()
        return resp.status


async def _caller(client: Client, people: Accounts, name: str) -> Caller:
    """Make the principal `name` stands for (and, for the last two, take its credential away)."""
    if name == "anonymous":
        return Caller(name, None, {})
    if name in ("viewer", "analyst", "disabled user"):
        username, password = await people.user("viewer" if name == "disabled user" else name)
        token = (await sign_in(client, username, password))["access_token"]
        if name != "disabled user":
            return Caller(name, name, bearer(token))
        admin, _ = await _key(people, "admin")
        resp = await client.patch(
            f"/v1/admin/users/{username}", json={"disabled": True}, headers=admin.headers
        )
        assert resp.status == 200, await resp.text()
        return Caller(name, None, bearer(token))
    if name == "revoked key":
        (feed, key_id), (admin, _) = await _key(people, "feed"), await _key(people, "admin")
        resp = await client.delete(f"/v1/admin/keys/{key_id}", headers=admin.headers)
        assert resp.status == 204, await resp.text()
        return Caller(name, None, feed.headers)
    return (await _key(people, name.removesuffix(" key")))[0]


async def _key(people: Accounts, role: str) -> tuple[Caller, str]:
    """An API key of `role`, and its key id."""
    key, secret, _ = await accounts.create_key(people.pool, people.name(role), role)
    return Caller(f"{role} key", role, {"X-API-Key": secret}), key.key_id


def test_every_route_declares_its_guard() -> None:
    for route in ROUTES:
        assert isinstance(route.guard, Guard), f"{route.method} {route.path} has no Guard"
        assert route.guard.roles <= frozenset(ROLES), f"{route.method} {route.path}: unknown roles"
        assert route.guard.cost >= 1
        if route.path.startswith("/v1/admin/"):
            assert route.guard.roles == {"admin"}, f"{route.method} {route.path} is admin-only"
    keys = [(r.method, r.path) for r in ROUTES]
    assert len(keys) == len(set(keys)), "a route is declared twice"


async def test_the_router_serves_exactly_the_table(start_gateway: StartGateway) -> None:
    client = await start_gateway()
    served: set[tuple[str, str]] = set()
    for resource_route in client.app.router.routes():
        if resource_route.method == "HEAD":
            continue
        canonical = resource_route.resource.canonical if resource_route.resource else "?"
        served.add((resource_route.method, canonical))
        if (resource_route.method, canonical) not in SERVICE_ROUTES:
            guard = getattr(resource_route.handler, "guard", None)
            assert isinstance(guard, Guard), f"{resource_route.method} {canonical} is served unguarded"
    assert served == {(r.method, r.path) for r in ROUTES} | SERVICE_ROUTES


async def test_openapi_lists_exactly_the_table(gateway: Client) -> None:
    resp = await gateway.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    listed = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert listed == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["x-roles"] == sorted(route.guard.roles)
        assert (op["security"] == []) == (not route.guard.roles)
        assert str(route.status) in op["responses"]
        assert op["operationId"] == openapi.operation_id(route)


@pytest.mark.parametrize("who", CALLERS)
async def test_route_role_matrix(start_gateway: StartGateway, people: Accounts, who: str) -> None:
    # Every anonymous request to a guarded route is an authentication failure: keep this test's
    # own budget for those (per test prefix) above the number of routes.
    client = await start_gateway(AUTH_FAILURES_PER_MINUTE="10000")
    caller = await _caller(client, people, who)
    wrong: list[str] = []
    for route in ORDERED:
        status = await _status(client, route, caller)
        want = expected(route, caller)
        if outcome(status) != want:
            wrong.append(f"{route.method} {route.path}: {who} got {status}, expected {want}")
    assert not wrong, "\n".join(wrong)
