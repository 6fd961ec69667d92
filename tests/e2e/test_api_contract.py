"""The HTTP API as a contract, against the real stack: every route with another tenant's ids, the security
cases of issue 14 (deleted sessions, agents across tenants, rate limits, revoked keys), seed 000's payloads
and WebSocket on the API port."""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from argon2 import PasswordHasher
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import Stack, Tenant
from tests.support import media_samples as samples
from tests.support.clients import WsCollector, eventually
from zapstream_platform import apikeys
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, read_all

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = orjson.loads((ROOT / "schemas" / "openapi.json").read_bytes())
PASSWORD = "correct horse battery staple"
JID = "51911111111@s.whatsapp.net"
GROUP = "120363025246125486@g.us"


@dataclass
class Owner:
    tenant_id: str
    user_id: str
    email: str
    http: httpx.AsyncClient  # as the owner (JWT)


def new_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


async def make_owner(pg: asyncpg.Pool, stack: Stack, clients: list[httpx.AsyncClient]) -> Owner:
    """An owner straight in the database (registration has its own tests), then a real login."""
    tenant_id, user_id = f"t-{uuid.uuid4().hex[:10]}", uuid.uuid4()
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    await pg.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", tenant_id)
    await pg.execute(
        """INSERT INTO users (id, tenant_id, email, name, password_hash, role, email_verified_at)
           VALUES ($1, $2, $3, 'Owner', $4, 'owner', now())""", user_id, tenant_id, email, PasswordHasher().hash(PASSWORD))
    http = httpx.AsyncClient(base_url=stack.api_url, timeout=15, headers={"X-Forwarded-For": new_ip()})
    clients.append(http)
    r = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    http.headers["Authorization"] = f"Bearer {r.json()['accessToken']}"
    return Owner(tenant_id, str(user_id), email, http)


@pytest.fixture
async def clients() -> Any:
    made: list[httpx.AsyncClient] = []
    yield made
    for http in made:
        await http.aclose()


def problem(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"


# --- every route with a second tenant's ids ---------------------------------------------------------


async def test_every_route_with_another_tenants_ids_is_a_404(pg: asyncpg.Pool, stack: Stack,
                                                             clients: list[httpx.AsyncClient]) -> None:
    a, b = await make_owner(pg, stack, clients), await make_owner(pg, stack, clients)
    # A's resources: a session, a command, an upload, an agent, an API key.
    r = await a.http.post("/sessions", json={})
    assert r.status_code == 202, r.text
    sid, command_id = r.json()["sessionId"], r.json()["commandId"]
    r = await a.http.post("/media", files={"file": ("p.png", samples.png_path().read_bytes(), "image/png")},
                          data={"kind": "image"})
    assert r.status_code == 201, r.text
    media_id = r.json()["mediaId"]
    agent_email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    assert (await a.http.post("/agents", json={"name": "S1", "email": agent_email, "password": PASSWORD})
            ).status_code == 202
    agent_id = next(x["id"] for x in (await a.http.get("/agents")).json()["agents"] if x["email"] == agent_email)
    key_id = (await a.http.post("/api-keys", json={"name": "a"})).json()["id"]

    async def outcome() -> bool:
        return (await a.http.get(f"/commands/{command_id}")).status_code == 200

    await eventually(outcome)

    r = await a.http.post("/address-book/contacts", json={"phone": "595981123456", "nombre": "Ana", "grupo": "g"})
    assert r.status_code == 201, r.text
    contact_id = r.json()["id"]
    r = await a.http.post("/address-book/import", content=b"numero,sustantivo,nombre,grupo\n595981123457,Sr,Luis,g\n",
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    import_id = r.json()["importId"]
    assert (await a.http.post("/suppressions", json={"phone": "595981123458"})).status_code in (200, 201)
    ids = {"session_id": sid, "command_id": command_id, "media_id": media_id, "user_id": agent_id,
           "contact_id": contact_id, "import_id": import_id, "phone": "595981123458",
           # A campaign needs a connected number to be created; another tenant's and a missing one answer
           # alike, so an unknown id walks the same code.
           "campaign_id": str(uuid.uuid4()),
           "key_id": key_id, "jid": JID, "message_id": "3EB0C0FFEE",
           # Registering a real endpoint needs a public HTTPS receiver; another tenant's and a missing
           # one answer alike, so an unknown id walks the same code.
           "endpoint_id": str(uuid.uuid4()),
           # Seed 003's chat ids are JIDs; groups are named by a group JID.
           "chat_id": JID}
    bodies: dict[tuple[str, str], Any] = {
        ("PUT", "/address-book/contacts/{contact_id}"): {"phone": "595981123459"},
        ("PUT", "/contacts/{contact_id}"): {"phone": "595981123459"},
        ("POST", "/campaigns/{campaign_id}/schedule"): {"at": "2030-01-01T00:00:00Z"},
        ("POST", "/sessions/{session_id}/messages"): {"to": "51911111111", "content": "x"},
        ("POST", "/sessions/{session_id}/pair-code"): {"phone": "51911111111"},
        ("POST", "/sessions/{session_id}/stop"): {"reason": "logout"},
        ("POST", "/chats/{jid}/messages"): {"content": "x", "sessionId": sid},
        ("POST", "/chats/{jid}/read"): {"messageIds": ["M1"], "sessionId": sid},
        ("POST", "/chats/{jid}/presence"): {"presence": "composing", "sessionId": sid},
        ("POST", "/chats/{jid}/presence/subscribe"): {"sessionId": sid},
        ("PATCH", "/chats/{jid}/messages/{message_id}"): {"content": "x", "sessionId": sid},
        ("POST", "/chats/{jid}/messages/{message_id}/reactions"): {"emoji": "👍", "sessionId": sid},
        ("POST", "/agents/{user_id}/chats"): {"chatJid": JID},
        ("POST", "/api/send-pdf"): {"sessionId": sid, "to": "51911111111", "pdfBase64": "JVBERi0xLjQK"},
        ("PATCH", "/webhooks/{endpoint_id}"): {"description": "x"},
        ("POST", "/webhooks/{endpoint_id}/replay"): {"from": "2026-01-01T00:00:00Z"},
        ("POST", "/groups/{jid}/participants"): {"action": "add", "participants": ["51911111111"]},
        ("POST", "/sessions/{session_id}/calls/settings"): {"rejectCalls": True},
        ("POST", "/api/chats/{chat_id}/messages"): {"message": "x"},
    }
    # Seed 003's chat list of messages names no session: it answers the caller's own (empty) one, never A's
    # (the seed 003 walkthrough checks that isolation).
    own_session = {("GET", "/api/chats/{chat_id}/messages")}
    with_session_query = {("GET", "/chats"), ("GET", "/contacts"), ("GET", "/chats/{jid}/messages"),
                          ("DELETE", "/chats/{jid}/messages/{message_id}")}
    walked = []
    for path, item in DOC["paths"].items():
        for method in item:
            key = (method.upper(), path)
            params = re.findall(r"{(\w+)}", path)
            if (path.startswith(("/dead-letters", "/users/")) or key in own_session
                    or not (params or key in bodies or key in with_session_query)):
                continue  # operators' and anonymous routes are no tenant's; the rest name no tenant resource
            url = path.format(**{p: GROUP if p == "jid" and path.startswith("/groups/") else ids[p] for p in params})
            query = {"sessionId": sid} if key in with_session_query else None
            r = await b.http.request(key[0], url, json=bodies.get(key), params=query)
            problem(r, 404)
            walked.append(key)
    assert len(walked) >= 25, walked
    # And nothing of A changed: the session, the agent and the key are still there.
    assert (await a.http.get(f"/sessions/{sid}")).status_code in (200, 404)  # 404 only until projected
    assert any(x["id"] == agent_id and not x["disabled"] for x in (await a.http.get("/agents")).json()["agents"])
    assert any(k["id"] == key_id and k["revokedAt"] is None for k in (await a.http.get("/api-keys")).json()["apiKeys"])


# --- security cases ---------------------------------------------------------------------------------


async def test_agents_never_reveal_another_tenants_users(pg: asyncpg.Pool, stack: Stack,
                                                         clients: list[httpx.AsyncClient]) -> None:
    a, b = await make_owner(pg, stack, clients), await make_owner(pg, stack, clients)
    fresh = await b.http.post("/agents", json={"name": "x", "email": f"n-{uuid.uuid4().hex[:8]}@example.com",
                                                "password": PASSWORD})
    taken = await b.http.post("/agents", json={"name": "x", "email": a.email, "password": PASSWORD})
    assert fresh.status_code == taken.status_code == 202
    assert {k: v for k, v in fresh.json().items() if k != "email"} == {k: v for k, v in taken.json().items()
                                                                        if k != "email"}
    assert a.email not in (await b.http.get("/agents")).text
    # A's owner is untouched: still A's, still able to sign in with the old password.
    row = await pg.fetchrow("SELECT tenant_id, role FROM users WHERE lower(email) = lower($1)", a.email)
    assert (row["tenant_id"], row["role"]) == (a.tenant_id, "owner")


async def test_a_deleted_session_is_404_at_once_and_never_shows_its_qr(tenant: Tenant) -> None:
    r = await tenant.http.post("/sessions", json={})
    sid = r.json()["sessionId"]
    assert r.headers["location"] == f"/sessions/{sid}"

    async def has_qr() -> dict[str, Any] | None:
        got = await tenant.http.get(f"/sessions/{sid}")
        return got.json() if got.status_code == 200 and got.json()["qr"] else None

    view = await eventually(has_qr)
    assert view["qrImage"].startswith("data:image/png;base64,")
    assert (await tenant.http.delete(f"/sessions/{sid}")).status_code == 202
    problem(await tenant.http.get(f"/sessions/{sid}"), 404)  # at once, not after the projector
    assert (await tenant.http.get("/sessions")).json() == {"sessions": []}
    problem(await tenant.http.post(f"/sessions/{sid}/start"), 404)
    problem(await tenant.http.post(f"/sessions/{sid}/messages", json={"to": "51911111111", "content": "x"}), 404)


async def test_rate_limits_by_plan_and_one_tenant_does_not_slow_another(pg: asyncpg.Pool,
                                                                      tenant_factory: Any) -> None:
    small: Tenant = await tenant_factory()
    big: Tenant = await tenant_factory()
    await pg.execute("UPDATE tenants SET plan = 'tiny' WHERE id = $1", small.id)  # 5/60 per key, 8/60 per tenant
    statuses = [(await small.http.get("/sessions")).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    r = await small.http.get("/sessions")
    problem(r, 429)
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-policy"] == '"key";q=5;w=60' and r.headers["ratelimit"].startswith('"key";r=0;')
    for _ in range(20):
        assert (await big.http.get("/sessions")).status_code == 200


async def test_a_revoked_key_stops_working_across_the_cache(pg: asyncpg.Pool, stack: Stack,
                                                            clients: list[httpx.AsyncClient]) -> None:
    owner = await make_owner(pg, stack, clients)
    created = (await owner.http.post("/api-keys", json={"name": "m"})).json()
    machine = httpx.AsyncClient(base_url=stack.api_url, timeout=15,
                                headers={"Authorization": f"Bearer {created['key']}"})
    clients.append(machine)
    for _ in range(3):  # cached now
        assert (await machine.get("/sessions")).status_code == 200
    assert (await owner.http.delete(f"/api-keys/{created['id']}")).status_code == 204
    problem(await machine.get("/sessions"), 401)
    # Revoked behind the API's back (another API process, the CLI): the identity event evicts it too.
    key = await apikeys.create_key(pg, owner.tenant_id, "cli")
    machine.headers["Authorization"] = f"Bearer {key}"
    assert (await machine.get("/sessions")).status_code == 200
    await pg.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1", apikeys.digest(key))
    key_id = await pg.fetchval("SELECT id FROM api_keys WHERE key_hash = $1", apikeys.digest(key))
    await pg.execute("INSERT INTO outbox (event_id, event_type, tenant_id, payload) VALUES ($1, 'apikey.revoked', "
                     "$2, $3)", uuid.uuid4(), owner.tenant_id, orjson.dumps({"keyId": str(key_id)}).decode())

    async def refused() -> bool:
        return (await machine.get("/sessions")).status_code == 401

    await eventually(refused)


# --- seed payloads ----------------------------------------------------------------------------------


async def test_lists_of_a_tenant_without_a_session_are_empty(tenant: Tenant) -> None:
    r = await tenant.http.get("/chats")
    assert r.status_code == 200 and r.json() == {"sessionId": None, "chats": []}
    r = await tenant.http.get("/contacts")
    assert r.status_code == 200 and r.json() == {"sessionId": None, "contacts": []}
    r = await tenant.http.get(f"/chats/{JID}/messages")
    assert r.status_code == 200 and r.json()["messages"] == []


async def test_stop_keeps_the_reason_as_given(tenant: Tenant, kafka: KafkaSettings) -> None:
    sid = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
    # Seed 000's curl, literally.
    r = await tenant.http.post(f"/sessions/{sid}/stop", content=b'{"reason":"logout"}',
                               headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    plain = await tenant.http.post(f"/sessions/{sid}/stop")
    assert plain.status_code == 202

    async def on_kafka() -> list[Any] | None:
        records = await read_all(kafka.bootstrap_servers, Topics.from_settings(kafka).session_commands)
        stops = [orjson.loads(x.value) for x in records if x.key == sid.encode()
                 and orjson.loads(x.value)["type"] == "session.stop"]
        return stops if len(stops) == 2 else None

    stops = await eventually(on_kafka)
    assert {s["commandId"]: s.get("reason") for s in stops} == {r.json()["commandId"]: "logout",
                                                                plain.json()["commandId"]: None}


async def test_the_websocket_is_served_on_the_api_port_too(stack: Stack, tenant: Tenant) -> None:
    url = stack.api_url.replace("http://", "ws://") + f"/ws/sessions?accessToken={tenant.key}"
    async with WsCollector(url) as ws:
        assert ws.of_type("session.snapshot")[0]["payload"] == {"tenantId": tenant.id, "session": None}
        sid = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
        qr = await ws.wait_for(lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == sid)
        assert qr["payload"]["qrImage"].startswith("data:image/png;base64,")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url.replace(tenant.key, "zs_live_wrong"), open_timeout=10):
            pass
    assert refused.value.response.status_code == 403
