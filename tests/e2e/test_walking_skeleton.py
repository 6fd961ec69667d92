"""The walking skeleton, end to end: HTTP → Kafka → runner → simulator → Kafka → read model and WebSocket."""

from __future__ import annotations

import httpx

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import link_session, new_phone
from tests.support.clients import WsCollector, eventually


async def test_session_send_receive_stop_delete(stack: Stack, tenant: Tenant, ws_url) -> None:  # type: ignore[no-untyped-def]
    async with WsCollector(ws_url(tenant)) as ws:
        snapshot = ws.of_type("session.snapshot")[0]
        assert snapshot["payload"] == {"tenantId": tenant.id, "session": None}

        sid, phone = await link_session(stack, tenant, ws)
        qr = ws.of_type("session.qr.updated")[0]
        assert set(qr) == {"type", "sessionId", "eventId", "occurredOn", "payload"}
        # qrImage (seed 003) is added by the gateway on the way out; the stored event keeps the raw QR only.
        assert set(qr["payload"]) == {"tenantId", "qr", "expiresAt", "qrImage"}
        assert qr["payload"]["qrImage"].startswith("data:image/png;base64,")
        connected = ws.of_type("session.status.connected")[0]
        assert connected["payload"]["phone"] == phone
        assert set(connected["payload"]) == {"tenantId", "phone", "connectedAt"}

        contact = new_phone()
        jid = f"{contact}@s.whatsapp.net"
        r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": contact, "content": "hola"})
        assert r.status_code == 202, r.text
        command_id, message_id = r.json()["commandId"], r.json()["messageId"]

        upsert = await ws.wait_for(
            lambda e: e["type"] == "session.messages.upsert" and e["payload"]["requestId"] == command_id
        )
        msg = upsert["payload"]["messages"][0]
        assert msg["id"] == message_id and msg["fromMe"] is True and msg["remoteJid"] == jid
        assert upsert["payload"]["messagesCount"] == 1 and upsert["payload"]["tenantId"] == tenant.id
        for status in ("delivered", "read"):
            await ws.wait_for(
                lambda e, s=status: e["type"] == "session.messages.update"
                and any(u["messageId"] == message_id and u["status"] == s for u in e["payload"]["updates"])
            )

        async def read_in_model() -> dict:  # type: ignore[type-arg]
            r = await tenant.http.get(f"/chats/{jid}/messages", params={"sessionId": sid})
            assert r.status_code == 200, r.text
            mine = [m for m in r.json()["messages"] if m["id"] == message_id]
            return mine[0] if mine and mine[0]["status"] == "read" else {}

        assert (await eventually(read_in_model))["text"] == "hola"

        # The scripted contact replies; it arrives like any incoming message.
        reply = await ws.wait_for(
            lambda e: e["type"] == "session.messages.upsert" and e["payload"]["upsertType"] == "notify"
            and e["payload"]["messages"][0]["remoteJid"] == jid
        )
        reply_id = reply["payload"]["messages"][0]["id"]
        assert reply["payload"]["messages"][0]["fromMe"] is False

        async def reply_in_model() -> bool:
            r = await tenant.http.get(f"/chats/{jid}/messages", params={"sessionId": sid})
            return any(m["id"] == reply_id for m in r.json()["messages"])

        await eventually(reply_in_model)
        chats = (await tenant.http.get("/chats")).json()
        assert chats["sessionId"] == sid
        # Most recent first; the rest came from the history sync on first pairing.
        assert chats["chats"][0]["jid"] == jid
        assert chats["chats"][0]["lastMessage"]["id"] == reply_id

        outcome = await eventually(lambda: _command(tenant, command_id))
        assert outcome["status"] == "succeeded" and outcome["result"] == {"messageId": message_id}

        r = await tenant.http.post(f"/sessions/{sid}/stop")
        assert r.status_code == 202
        stopped = await ws.wait_for(lambda e: e["type"] == "session.status.disconnected" and e["sessionId"] == sid)
        assert stopped["payload"]["reason"] == "stopped"

        r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": contact, "content": "late"})
        rejected = await eventually(lambda: _command(tenant, r.json()["commandId"]))
        assert rejected["status"] == "failed" and rejected["code"] == "not_connected"

        r = await tenant.http.delete(f"/sessions/{sid}")
        assert r.status_code == 202
        await ws.wait_for(lambda e: e["type"] == "session.deleted" and e["sessionId"] == sid)

        async def gone() -> bool:
            return (await tenant.http.get("/sessions")).json()["sessions"] == []

        await eventually(gone)


async def _command(tenant: Tenant, command_id: str) -> dict | None:  # type: ignore[type-arg]
    r = await tenant.http.get(f"/commands/{command_id}")
    return r.json() if r.status_code == 200 else None


async def test_tenants_never_see_each_other(stack: Stack, tenant_factory, ws_url) -> None:  # type: ignore[no-untyped-def]
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    async with WsCollector(ws_url(a)) as ws_a, WsCollector(ws_url(b)) as ws_b:
        sid, _ = await link_session(stack, a, ws_a)
        r = await a.http.post(f"/sessions/{sid}/messages", json={"to": new_phone(), "content": "secret"})
        await ws_a.wait_for(lambda e: e["type"] == "session.messages.upsert" and e["payload"]["requestId"]
                            == r.json()["commandId"])

        # Every route with A's ids and B's credentials is a 404, never data.
        jid = "51911111111@s.whatsapp.net"
        for method, path, body in [
            ("GET", f"/sessions/{sid}", None),
            ("POST", f"/sessions/{sid}/messages", {"to": "51911111111", "content": "x"}),
            ("POST", f"/sessions/{sid}/stop", None),
            ("POST", f"/sessions/{sid}/start", None),
            ("DELETE", f"/sessions/{sid}", None),
            ("GET", f"/chats?sessionId={sid}", None),
            ("GET", f"/chats/{jid}/messages?sessionId={sid}", None),
            ("POST", f"/chats/{jid}/messages", {"content": "x", "sessionId": sid}),
            ("GET", f"/commands/{r.json()['commandId']}", None),
        ]:
            resp = await b.http.request(method, path, json=body)
            assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
        assert (await b.http.get("/sessions")).json() == {"sessions": []}
        assert all(e["payload"]["tenantId"] == b.id for e in ws_b.events)
        assert [e["type"] for e in ws_b.events] == ["session.snapshot"]


async def test_bad_input_gets_problem_details(stack: Stack, tenant: Tenant) -> None:
    sid = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
    cases = [
        ("POST", f"/sessions/{sid}/messages", b"{not json", 422),
        ("POST", f"/sessions/{sid}/messages", b'{"to": "51999999999"}', 422),
        ("POST", f"/sessions/{sid}/messages", b'{"to": "not-a-phone", "content": "x"}', 422),
        ("POST", f"/sessions/{sid}/messages", b'{"to": 5, "content": ["x"]}', 422),
        ("POST", f"/sessions/{sid}/messages", b"[]", 422),
        ("POST", "/sessions", b'"x"', 422),
        ("GET", f"/chats/abc@example.org/messages?sessionId={sid}", None, 422),
        ("GET", f"/chats/51999999999/messages?sessionId={sid}&cursor=@@@", None, 422),
        ("GET", f"/chats/51999999999/messages?sessionId={sid}&limit=0", None, 422),
        ("POST", "/sessions/not-a-uuid/stop", None, 404),
    ]
    for method, path, raw, status in cases:
        resp = await tenant.http.request(method, path, content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == status, (path, raw, resp.status_code, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        body = resp.json()
        assert body["status"] == status and body["title"] and body["detail"]
    async with httpx.AsyncClient(base_url=stack.api_url) as anon:
        resp = await anon.get("/sessions")
        assert resp.status_code == 401
        assert resp.headers["content-type"] == "application/problem+json"
        resp = await anon.get("/sessions", headers={"Authorization": "Bearer zs_live_wrong"})
        assert resp.status_code == 401
