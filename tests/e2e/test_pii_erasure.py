"""Crypto-shredding of session events: message text and phone numbers are never in clear on the topic, readers
show them in clear, and once the tenant is deleted its WhatsApp sessions are unlinked and purged: the read
models hold them nowhere, at once and after a replay."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
import httpx
import orjson

from command_api.identity.service import hash_password
from projector.replay import TABLES, active_schema, replay
from projector.settings import Settings as ProjectorSettings
from tests.conftest import Stack
from tests.e2e.conftest import Linked, new_phone
from tests.support.clients import eventually, read_records
from zapstream_contracts.envelope import Envelope
from zapstream_platform.pii import KeyRing
from zapstream_platform.settings import KafkaSettings, PostgresSettings
from zapstream_platform.topics import Topics

PASSWORD = "correct horse battery staple"


async def _owner_of(stack: Stack, pg: asyncpg.Pool, tenant_id: str) -> httpx.AsyncClient:
    """An owner user for an API-key tenant of the test stack, signed in."""
    address = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    await pg.execute(
        """INSERT INTO users (id, tenant_id, email, name, password_hash, role, email_verified_at)
           VALUES ($1, $2, $3, 'Ada', $4, 'owner', now())""",
        uuid.uuid4(), tenant_id, address, await hash_password(PASSWORD))
    ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    http = httpx.AsyncClient(base_url=stack.api_url, headers={"X-Forwarded-For": ip}, timeout=15)
    r = await http.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert r.status_code == 200, r.text
    http.headers["Authorization"] = f"Bearer {r.json()['accessToken']}"
    return http


JOIN_KEYS = {"id", "messageId", "remoteJid", "chatJid", "participant", "to", "from", "jid", "actorJid", "author",
             "owner", "voter", "participants", "mentions"}


def _keys_holding(value: Any, needle: str, key: str = "") -> set[str]:
    """The keys of every string in ``value`` (walked) that contains ``needle``."""
    if isinstance(value, str):
        return {key} if needle in value else set()
    if isinstance(value, dict):
        return {k for name, v in value.items() for k in _keys_holding(v, needle, name)}
    if isinstance(value, list):
        return {k for v in value for k in _keys_holding(v, needle, key)}
    return set()


async def _rows_with(pg: asyncpg.Pool, schema: str, needle: str) -> dict[str, int]:
    found = {}
    for table in TABLES:
        n = await pg.fetchval(f"SELECT count(*) FROM {schema}.{table} t WHERE t::text LIKE $1", f"%{needle}%")
        if n:
            found[table] = int(n)
    return found


async def test_session_pii_is_encrypted_on_the_log_clear_for_readers_and_gone_after_the_tenant_is_deleted(
        linked: Linked, pg: asyncpg.Pool, kafka: KafkaSettings, infra: str) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    said, heard = f"out-secret-{uuid.uuid4().hex[:8]}", f"in-secret-{uuid.uuid4().hex[:8]}"
    await linked.quiet_contact(contact)
    sent, upsert = await linked.send(contact, content=said)
    # The WebSocket shows clear text, as ever.
    assert upsert["payload"]["messages"][0]["text"] == said
    injected = (await linked.sim.post("/control/inject", json={"from": contact, "to": linked.phone,
                                                                "text": heard})).json()
    incoming = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.upsert" and any(
        m["id"] == injected["id"] for m in e["payload"]["messages"]))
    assert incoming["payload"]["messages"][0]["text"] == heard
    connected = linked.ws.of_type("session.status.connected")
    assert connected and connected[-1]["payload"]["phone"] == linked.phone

    # So do the read models.
    async def projected() -> bool:
        return ((await linked.message(jid, sent["messageId"])).get("text") == said
                and (await linked.message(jid, injected["id"])).get("text") == heard)

    await eventually(projected, timeout=30)

    # The topic never holds them in clear: neither the texts nor the linked account's number.
    topic = Topics.from_settings(kafka).session_events
    ours = [(v, h) for v, h in await read_records(kafka.bootstrap_servers, topic)
            if dict(h).get("ce_subject") == linked.sid.encode()]
    assert ours
    raw = b"\n".join(v for v, _ in ours)
    assert said.encode() not in raw and heard.encode() not in raw
    # The account's number is left only in JIDs and ids (history pages name chats by JID; the simulator's
    # message ids embed it): join keys, not encrypted yet (docs/events.md, "What is left").
    assert b"zsenc:1:" in raw
    holders = {key for v, _ in ours for key in _keys_holding(orjson.loads(v)["payload"], linked.phone)}
    assert holders <= JOIN_KEYS, holders

    # Only the owner may delete the tenant; an API key may not.
    denied = await linked.tenant.http.delete("/tenant")
    assert denied.status_code == 403 and denied.headers["content-type"].startswith("application/problem+json")
    owner = await _owner_of(linked.stack, pg, linked.tenant.id)
    try:
        assert (await owner.delete("/tenant")).status_code == 204
        assert (await owner.delete("/tenant")).status_code == 401  # its credentials ended with the tenant
    finally:
        await owner.aclose()
    assert (await linked.tenant.http.get("/sessions")).status_code == 401  # API keys revoked
    tenant_id = linked.tenant.id
    assert await pg.fetchval("SELECT count(*) FROM pii_keys WHERE tenant_id = $1", tenant_id) == 0
    assert await pg.fetchval("SELECT kind FROM pii_erasures WHERE subject_id = $1", tenant_id) == "tenant"

    # Its sessions are deleted with a purge: the runner unlinks the device (the simulator sees it go)...
    async def unlinked() -> bool:
        device = (await linked.sim.get(f"/control/devices/{linked.sid}")).json()
        return not device["connected"] and not device["linked"]

    await eventually(unlinked, timeout=30)
    # ...and the projector removes its rows from the read models, without a replay.
    before = await active_schema(pg, "main")

    async def purged() -> bool:
        row = await pg.fetchrow(f"SELECT status, phone, disconnected_reason FROM {before}.rm_sessions WHERE id = $1",
                                uuid.UUID(linked.sid))
        return row is not None and row["status"] == "deleted" and row["disconnected_reason"] == "purged"

    await eventually(purged, timeout=30)
    for needle in (said, heard, linked.phone, contact):
        assert await _rows_with(pg, before, needle) == {}, needle
    assert await pg.fetchval(f"SELECT count(*) FROM {before}.rm_messages WHERE session_id = $1",
                             uuid.UUID(linked.sid)) == 0
    # The log says why: the session's last state change is a session.deleted with purged: true.
    deleted = [Envelope.from_record(v, h) for v, h in await read_records(kafka.bootstrap_servers, topic)
               if dict(h).get("ce_subject") == linked.sid.encode()]
    assert [e.payload.get("purged") for e in deleted if e.type == "session.deleted"] == [True]

    # Readers now see those fields as null, with erased: true.
    keys = KeyRing(pg)
    opened = [await keys.open(Envelope.from_record(v, h)) for v, h in ours]
    upserts = [e for e in opened if e.type == "session.messages.upsert"]
    assert upserts and all(e.payload.get("erased") is True for e in upserts)
    assert all(m["text"] is None for e in upserts for m in e.payload["messages"])
    assert all(e.payload["phone"] is None for e in opened if e.type == "session.status.connected")

    # A replay rebuilds the read models the same way: the purge is an event like any other.
    await replay(ProjectorSettings(kafka=kafka, postgres=PostgresSettings(dsn=infra), batch_max=500), pg)
    after = await active_schema(pg, "main")
    assert after != before
    for needle in (said, heard, linked.phone, contact):
        assert await _rows_with(pg, after, needle) == {}, needle
    assert await pg.fetchval(f"SELECT count(*) FROM {after}.rm_messages WHERE session_id = $1",
                             uuid.UUID(linked.sid)) == 0
    row = await pg.fetchrow(f"SELECT status, phone, disconnected_reason FROM {after}.rm_sessions WHERE id = $1",
                            uuid.UUID(linked.sid))
    assert row is not None and dict(row) == {"status": "deleted", "phone": None, "disconnected_reason": "purged"}


async def test_deleting_one_session_with_purge_removes_its_data_from_the_read_models(
        linked: Linked, pg: asyncpg.Pool) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    said = f"purge-me-{uuid.uuid4().hex[:8]}"
    await linked.quiet_contact(contact)
    sent, _ = await linked.send(contact, content=said)

    async def projected() -> bool:
        return (await linked.message(jid, sent["messageId"])).get("text") == said

    await eventually(projected, timeout=30)
    http = linked.tenant.http
    bad = await http.delete(f"/sessions/{linked.sid}", params={"purge": "perhaps"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")

    r = await http.delete(f"/sessions/{linked.sid}", params={"purge": "true"})
    assert r.status_code == 202, r.text
    assert (await http.get(f"/sessions/{linked.sid}")).status_code == 404
    deleted = await linked.ws.wait_for(lambda e: e["type"] == "session.deleted" and e["sessionId"] == linked.sid)
    assert deleted["payload"]["purged"] is True

    async def unlinked() -> bool:
        device = (await linked.sim.get(f"/control/devices/{linked.sid}")).json()
        return not device["connected"] and not device["linked"]

    await eventually(unlinked, timeout=30)
    schema = await active_schema(pg, "main")

    async def purged() -> bool:
        reason = await pg.fetchval(f"SELECT disconnected_reason FROM {schema}.rm_sessions WHERE id = $1",
                                   uuid.UUID(linked.sid))
        return bool(reason == "purged")

    await eventually(purged, timeout=30)
    for needle in (said, contact, linked.phone):
        assert await _rows_with(pg, schema, needle) == {}, needle
    # The deletion's own outcome is still there for its caller (its result is empty: nothing to keep).
    outcome = await linked.outcome(r.json()["commandId"])
    assert outcome["status"] == "succeeded" and outcome["type"] == "session.delete"
