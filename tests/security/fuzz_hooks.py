"""Schemathesis hooks for `make fuzz` (loaded through SCHEMATHESIS_HOOKS by tests/security/fuzz.py).

Before each call: the credential the operation needs (the admin key on admin routes, the feed
key elsewhere, which every read accepts too), and the request confined to what the run can
remove afterwards: names, game and player ids under the run's prefix, two made-up teams, one
season (no new partitions), events as history (`live=false`). After a 202 from an import,
the job id is noted for the clean-up.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

PREFIX = os.environ.get("FUZZ_PREFIX", "fz")
TEAMS = ("ZQA", "ZQB")  # made-up codes: their totals are removed with the run
SEASON = 2019  # a season the stack has: fuzzed events create no partition
ID_FIELDS = frozenset({"game_id", "player_id", "event_id", "play_id"})
TEAM_FIELDS = frozenset({"home", "away", "offense", "defense", "team"})
NAME_PATHS = {"/v1/admin/users/{username}": "username", "/v1/admin/keys/{key_id}": "key_id"}


def confined(value: Any) -> Any:
    """`value` with every id under the run's prefix, every team one of TEAMS, every season SEASON."""
    if isinstance(value, list):
        return [confined(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ID_FIELDS and isinstance(item, str):
            item = f"{PREFIX}-{item}"[:128]
        elif key in TEAM_FIELDS and isinstance(item, str):
            item = TEAMS[len(item) % 2]
        elif key == "season" and isinstance(item, int) and not isinstance(item, bool):
            item = SEASON
        elif key in ("username", "name") and isinstance(item, str):
            item = _name(item)
        out[key] = confined(item)
    return out


def _name(value: str) -> str:
    """A user or key name under the prefix (the schema's pattern: 1-64 of [A-Za-z0-9_.@-])."""
    return f"{PREFIX}-{value}"[:64]


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    path = case.operation.path
    key = os.environ["FUZZ_ADMIN_KEY"] if path.startswith("/v1/admin/") else os.environ["FUZZ_FEED_KEY"]
    case.headers = {**(case.headers or {}), "X-API-Key": key}
    if path in NAME_PATHS and case.path_parameters:
        name = NAME_PATHS[path]
        case.path_parameters[name] = _name(str(case.path_parameters.get(name, "")))
    if path == "/v1/events":
        case.query = {**(case.query or {}), "live": "false"}
    if isinstance(case.body, (dict, list)):
        case.body = confined(case.body)


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    if case.operation.path == "/v1/imports" and response.status_code == 202:
        with open(os.environ["FUZZ_JOBS_FILE"], "a", encoding="utf-8") as jobs:
            jobs.write(response.json()["job_id"] + "\n")
