"""The OpenAPI document as a contract: valid 3.1, typed bodies and answers, security and errors on every route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from command_api.app import build_app
from command_api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = orjson.loads((ROOT / "schemas" / "openapi.json").read_bytes())
PUBLIC = {("POST", "/users"), ("POST", "/users/{user_id}/verify"), ("POST", "/auth/login"),
          ("POST", "/auth/refresh"), ("POST", "/auth/logout"), ("POST", "/auth/resend-verification"),
          ("POST", "/auth/password-reset"), ("POST", "/auth/password-reset/confirm")}
# Routes that take no body at all (everything is in the path).
BODYLESS = {("POST", "/sessions/{session_id}/start"), ("DELETE", "/sessions/{session_id}"),
            ("POST", "/auth/refresh"), ("POST", "/auth/logout"), ("POST", "/auth/logout-all"),
            ("POST", "/agents/{user_id}/disable"), ("POST", "/agents/{user_id}/enable"),
            ("POST", "/dead-letters/commands/{partition}/{offset}/redrive"),
            ("POST", "/dead-letters/events/{dead_letter_id}/redrive"),
            ("POST", "/webhooks/{endpoint_id}/pause"), ("POST", "/webhooks/{endpoint_id}/resume"),
            *{("POST", f"/campaigns/{{campaign_id}}/{action}")
              for action in ("start", "pause", "resume", "cancel", "retry-failed")}}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in DOC["paths"].items() for method, op in item.items()]


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    validate(DOC)


def test_every_route_with_a_body_declares_it_typed_with_examples() -> None:
    schemas = DOC["components"]["schemas"]
    for method, path, op in operations():
        if method not in ("POST", "PUT", "PATCH") or (method, path) in BODYLESS:
            continue
        body = op.get("requestBody")
        assert body is not None, (method, path)
        content = body["content"]
        media = content.get("application/json") or content.get("multipart/form-data")
        assert media and media.get("schema"), (method, path)
        ref = media["schema"].get("$ref") or next(
            (x.get("$ref") for x in media["schema"].get("anyOf", []) if "$ref" in x), None)
        if ref:
            model = schemas[ref.rsplit("/", 1)[1]]
            assert model.get("examples"), f"{method} {path}: no example in {ref}"


def test_every_route_declares_a_typed_answer_and_problem_json_errors() -> None:
    for method, path, op in operations():
        answers = op["responses"]
        ok = [s for s in answers if s.startswith("2")]
        assert ok, (method, path)
        for status in ok:
            if status == "204":
                continue
            schema = answers[status]["content"]["application/json"]["schema"]
            assert schema not in ({}, {"type": "string"}), (method, path, status)
        errors = [s for s in answers if s[0] in "45"]
        assert "422" in errors, (method, path)
        for status in errors:
            content = answers[status]["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetail"}


def test_every_protected_route_declares_bearer_and_api_key_security() -> None:
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                     "description": schemes["bearerAuth"]["description"]}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-Api-Key"
    for method, path, op in operations():
        names = {name for requirement in op.get("security", []) for name in requirement}
        if (method, path) in PUBLIC:
            assert names <= {"refreshCookie"}, (method, path)
        elif path.startswith("/dead-letters"):
            assert names == {"operatorToken"}, (method, path)
        else:
            assert names == {"bearerAuth", "apiKey"}, (method, path)
            assert "401" in op["responses"] and "429" in op["responses"], (method, path)
            assert set(op["responses"]["429"]["headers"]) >= {"Retry-After", "RateLimit"}


def test_command_routes_declare_idempotency_key_and_post_sessions_declares_location() -> None:
    commands = [(m, p, op) for m, p, op in operations() if "202" in op["responses"] and "commandId" in orjson.dumps(
        DOC["components"]["schemas"].get(op["responses"]["202"]["content"]["application/json"]["schema"].get(
            "$ref", "#/x").rsplit("/", 1)[1], {})).decode()]
    assert len(commands) >= 10
    for method, path, op in commands:
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert "Idempotency-Key" in headers, (method, path)
    created = DOC["paths"]["/sessions"]["post"]["responses"]["202"]
    assert "Location" in created["headers"] and "Idempotent-Replayed" in created["headers"]


def test_message_read_model_names_seed_keys_and_deprecates_the_old_ones() -> None:
    props = DOC["components"]["schemas"]["MessageView"]["properties"]
    assert "replyTo" in props and "forward" in props
    assert props["replyToMessageId"]["deprecated"] is True and props["forwarded"]["deprecated"] is True


def test_stop_accepts_a_reason_and_sessions_show_the_qr_image() -> None:
    stop = DOC["paths"]["/sessions/{session_id}/stop"]["post"]["requestBody"]
    assert stop["content"]["application/json"]
    assert "reason" in DOC["components"]["schemas"]["StopSessionBody"]["properties"]
    assert "qrImage" in DOC["components"]["schemas"]["SessionView"]["properties"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: nothing is connected, which is the point (the document and docs need no servers).
    transport = httpx.ASGITransport(app=build_app(Settings(dev_mode=True)))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


async def test_openapi_json_is_served_without_kafka_and_matches_the_committed_file(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.json() == DOC


async def test_docs_are_served_from_local_assets(client: httpx.AsyncClient) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await client.get(page)).text
        assert f"/static-offline-docs/{asset}" in html and "cdn." not in html
        r = await client.get(f"/static-offline-docs/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000


async def test_405_carries_allow(client: httpx.AsyncClient) -> None:
    r = await client.get("/sessions/00000000-0000-0000-0000-000000000000/stop")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.put("/sessions")
    assert r.status_code == 405 and {"GET", "POST"} <= set(r.headers["allow"].split(", ")) <= {"GET", "HEAD", "POST"}


async def test_oversized_and_nul_bodies_are_refused_before_the_routes(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/login", content=b"{" + b" " * 2_000_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    r = await client.post("/auth/login", content=b'{"email": "a\\u0000@x.com", "password": "x"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_every_route_with_a_body_documents_413() -> None:
    for method, path, op in operations():
        if "requestBody" in op:
            assert "413" in op["responses"], (method, path)
