"""/openapi.json is generated from the route table and the Structs; /docs renders it with the project's own files."""

from __future__ import annotations

import re
from typing import Any

from services.gateway import openapi
from services.gateway.routes import ROUTES
from services.query.plays import PLAY_PARAMS
from tests.gateway.conftest import Client


def _param(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"] == name)


def test_query_parameters_come_from_the_services_parsers() -> None:
    doc = openapi.document()
    plays = doc["paths"]["/v1/plays"]["get"]
    assert {p["name"] for p in plays["parameters"]} == set(PLAY_PARAMS)
    season = _param(plays, "season")
    assert season["schema"]["items"] == {"type": "integer", "minimum": 1920, "maximum": 2100}
    assert (season["style"], season["explode"]) == ("form", False)
    assert _param(plays, "limit")["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert _param(plays, "sort")["schema"]["items"]["enum"] == ["newest", "oldest"]
    assert _param(plays, "touchdown")["schema"] == {"type": "boolean"}
    leaders = doc["paths"]["/v1/analytics/leaders"]["get"]
    assert _param(leaders, "stat")["required"] is True
    assert "passing.yards" in _param(leaders, "stat")["schema"]["items"]["enum"]
    imports = doc["paths"]["/v1/imports"]["post"]
    assert _param(imports, "format")["schema"]["items"]["enum"] == ["gamecenter"]


def test_bodies_and_answers_come_from_the_structs() -> None:
    doc = openapi.document()
    schemas = doc["components"]["schemas"]
    events = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(events)
    assert events["application/json"]["schema"]["oneOf"][0] == {"$ref": "#/components/schemas/PlayEvent"}
    assert set(schemas["PlayEvent"]["discriminator"]["mapping"]) == {
        "play_recorded",
        "play_corrected",
        "play_deleted",
    }
    assert schemas["PlayRecorded"]["properties"]["occurred_at"] == {"type": "string", "format": "date-time"}
    assert schemas["Game"]["properties"]["season"] == {"type": "integer", "minimum": 1920, "maximum": 2100}
    assert sorted(schemas["NewUser"]["properties"]["role"]["enum"]) == ["admin", "analyst", "feed", "viewer"]
    keys = doc["paths"]["/v1/admin/keys"]["post"]
    assert keys["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewKey"
    }
    assert keys["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeyCreated"
    }
    error = schemas["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "details"}


def test_every_answer_documents_the_rate_limit_headers_and_errors() -> None:
    doc = openapi.document()
    components = doc["components"]
    assert components["responses"]["E429"]["headers"]["Retry-After"] == {
        "$ref": "#/components/headers/Retry-After"
    }
    assert components["headers"]["Retry-After"]["required"] is True
    assert "Retry-After" in components["responses"]["E503"]["headers"]
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        responses = op["responses"]
        for status in ("400", "405", "429", "503"):
            assert status in responses, (route.path, status)
        if route.guard.roles:
            assert {"401", "403"} <= set(responses)
            assert {"bearer": []} in op["security"] and {"apiKey": []} in op["security"]
        else:
            assert op["security"] == []
        for answer in responses.values():
            answer = _resolve(doc, answer)
            assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(answer["headers"])
    assert "413" in doc["paths"]["/v1/events"]["post"]["responses"]
    assert "422" in doc["paths"]["/v1/events"]["post"]["responses"]


def _resolve(doc: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in obj:
        return obj
    node: Any = doc
    for part in obj["$ref"][2:].split("/"):
        node = node[part]
    result: dict[str, Any] = node
    return result


async def test_docs_page_is_self_contained(gateway: Client) -> None:
    resp = await gateway.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert 'fetch("/openapi.json"' in page
    # Nothing from elsewhere: no external script, style sheet, image or font.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
