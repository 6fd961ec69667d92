"""One test per row of the client's "Comparativa WhatsApp Web" table (seed 000), media and auth aside.

Each drives the row through the real services and the simulator, and checks
the HTTP answer, the WebSocket event (payload keys as in seed 001) and the
read model.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import Linked, link_session, new_phone
from tests.support.clients import WsCollector, eventually

Event = dict[str, Any]


def keys(event: Event) -> set[str]:
    return set(event["payload"])


async def test_qr_and_connection_status(linked: Linked) -> None:
    qr = linked.ws.of_type("session.qr.updated")[0]
    assert keys(qr) == {"tenantId", "qr", "expiresAt", "qrImage"}  # qrImage: a PNG data URL (seed 003)
    r = await linked.sim.post(f"/control/devices/{linked.sid}/drop", json={})
    assert r.status_code == 200, r.text
    down = await linked.ws.wait_for(lambda e: e["type"] == "session.status.disconnected" and e["sessionId"] == linked.sid)
    assert keys(down) == {"tenantId", "reason", "disconnectedAt"}
    # The driver reconnects by itself and the session comes back.
    await linked.ws.wait_for(
        lambda e: e["type"] == "session.status.connected" and e["eventId"] != linked.ws.of_type(
            "session.status.connected")[0]["eventId"]
    )

    async def back() -> bool:
        return (await linked.tenant.http.get(f"/sessions/{linked.sid}")).json()["status"] == "connected"

    await eventually(back)


async def test_initial_history_sync(linked: Linked) -> None:
    sync = await linked.ws.wait_for(lambda e: e["type"] == "session.history.sync")
    assert keys(sync) == {"tenantId", "syncType", "progress", "isLatest", "chatsCount", "contactsCount",
                          "messagesCount", "messagesTruncated", "messages"}
    first = sync["payload"]["messages"][0]
    assert {"id", "remoteJid", "fromMe", "timestamp", "type", "text"} <= set(first)

    async def in_model() -> bool:
        return bool(await linked.message(first["remoteJid"], first["id"]))

    await eventually(in_model)


async def test_chat_list_and_paginated_messages(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    jid = f"{contact}@s.whatsapp.net"
    sent = [(await linked.send(contact, content=f"m{i}"))[0]["messageId"] for i in range(5)]

    async def all_in() -> bool:
        return len((await linked.messages(jid))["messages"]) == 5

    await eventually(all_in)
    chats = (await linked.tenant.http.get("/chats", params={"sessionId": linked.sid})).json()["chats"]
    assert chats[0]["jid"] == jid and chats[0]["lastMessage"]["id"] == sent[-1]

    page1 = await linked.messages(jid, limit=2)
    assert [m["id"] for m in page1["messages"]] == [sent[4], sent[3]]
    # A new message must not shift the pages already being walked.
    await linked.send(contact, content="newer")
    page2 = await linked.messages(jid, limit=2, cursor=page1["nextCursor"])
    assert [m["id"] for m in page2["messages"]] == [sent[2], sent[1]]
    page3 = await linked.messages(jid, limit=2, cursor=page2["nextCursor"])
    assert [m["id"] for m in page3["messages"]] == [sent[0]] and page3["nextCursor"] is None


async def test_send_text_with_delivery_and_read_states(linked: Linked) -> None:
    contact = new_phone()
    accepted, upsert = await linked.send(contact, content="hola")
    assert keys(upsert) == {"tenantId", "upsertType", "requestId", "messagesCount", "messages"}
    mid = accepted["messageId"]
    seen: list[str] = []
    for status in ("delivered", "read"):
        update = await linked.ws.wait_for(
            lambda e, s=status: e["type"] == "session.messages.update"
            and any(u["messageId"] == mid and u["status"] == s for u in e["payload"]["updates"])
        )
        assert {"tenantId", "updatesCount", "updates"} <= keys(update)
        assert set(update["payload"]["updates"][0]) >= {"messageId", "status", "statusAt"}
        seen.append(status)

    async def read() -> bool:
        return (await linked.message(f"{contact}@s.whatsapp.net", mid)).get("status") == "read"

    await eventually(read)
    assert (await linked.outcome(accepted["commandId"]))["status"] == "succeeded"


async def test_reply_and_forward(linked: Linked) -> None:
    contact, other = new_phone(), new_phone()
    await linked.quiet_contact(other)
    first, _ = await linked.send(contact, content="original")
    reply, reply_upsert = await linked.send(contact, content="a reply", replyToMessageId=first["messageId"])
    assert reply_upsert["payload"]["messages"][0]["replyToMessageId"] == first["messageId"]

    async def projected() -> bool:
        return bool(await linked.message(f"{contact}@s.whatsapp.net", first["messageId"]))

    await eventually(projected)
    fwd, fwd_upsert = await linked.send(other, forwardMessageId=first["messageId"])
    msg = fwd_upsert["payload"]["messages"][0]
    assert msg["text"] == "original" and msg["forwarded"] is True and msg["remoteJid"] == f"{other}@s.whatsapp.net"

    async def both() -> bool:
        r = await linked.message(f"{contact}@s.whatsapp.net", reply["messageId"])
        f = await linked.message(f"{other}@s.whatsapp.net", fwd["messageId"])
        # Seed 001's names, and the earlier ones for one more minor version.
        return (r.get("replyTo") == r.get("replyToMessageId") == first["messageId"]
                and f.get("forward") is f.get("forwarded") is True and r.get("forward") is False)

    await eventually(both)
    r = await linked.tenant.http.post(f"/chats/{other}/messages",
                                      json={"sessionId": linked.sid, "forwardMessageId": "nope"})
    assert r.status_code == 404


async def test_real_reads_clear_unread(linked: Linked) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    for text in ("one", "two"):
        r = await linked.sim.post("/control/inject", json={"from": contact, "to": linked.phone, "text": text})
        assert r.status_code == 200, r.text

    async def unread_two() -> list[dict[str, Any]]:
        chats = (await linked.tenant.http.get("/chats", params={"sessionId": linked.sid})).json()["chats"]
        mine = [c for c in chats if c["jid"] == jid]
        return mine if mine and mine[0]["unreadCount"] == 2 else []

    await eventually(unread_two)
    ids = [m["id"] for m in (await linked.messages(jid))["messages"]]
    r = await linked.tenant.http.post(f"/chats/{contact}/read", json={"sessionId": linked.sid, "messageIds": ids})
    assert r.status_code == 202
    update = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.update"
                                      and e["payload"].get("source") == "read")
    assert {u["messageId"] for u in update["payload"]["updates"]} == set(ids)

    async def cleared() -> bool:
        chats = (await linked.tenant.http.get("/chats", params={"sessionId": linked.sid})).json()["chats"]
        return [c["unreadCount"] for c in chats if c["jid"] == jid] == [0]

    await eventually(cleared)
    assert (await linked.outcome(r.json()["commandId"]))["status"] == "succeeded"


async def test_edit_own_and_incoming_messages(linked: Linked) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    sent, _ = await linked.send(contact, content="tpyo")
    r = await linked.tenant.http.patch(f"/chats/{jid}/messages/{sent['messageId']}",
                                       json={"sessionId": linked.sid, "content": "typo"})
    assert r.status_code == 202, r.text
    edit = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.edit")
    assert keys(edit) == {"tenantId", "editsCount", "edits"}
    assert {"messageId", "text", "type", "editedAt"} <= set(edit["payload"]["edits"][0])

    async def edited() -> bool:
        m = await linked.message(jid, sent["messageId"])
        return m.get("isEdited") is True and m["text"] == "typo" and m["editedAt"] is not None

    await eventually(edited)

    # A contact edits its own message.
    injected = (await linked.sim.post("/control/inject", json={"from": contact, "to": linked.phone, "text": "helo"})).json()
    incoming_id = injected["id"]
    r = await linked.sim.post(f"/control/contacts/{contact}/edit",
                              json={"to": linked.phone, "messageId": incoming_id, "text": "hello"})
    assert r.status_code == 200, r.text

    async def incoming_edited() -> bool:
        m = await linked.message(jid, incoming_id)
        return m.get("text") == "hello" and m.get("isEdited") is True

    await eventually(incoming_edited)


async def test_delete_message_and_clear_chat(linked: Linked) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    sent, _ = await linked.send(contact, content="oops")
    r = await linked.tenant.http.delete(f"/chats/{jid}/messages/{sent['messageId']}", params={"sessionId": linked.sid})
    assert r.status_code == 202, r.text
    deleted = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.delete"
                                       and e["payload"]["scope"] == "message")
    assert {"tenantId", "scope", "deletesCount", "deletes"} <= keys(deleted)
    assert set(deleted["payload"]["deletes"][0]) >= {"messageId", "deletedAt"}

    async def gone() -> bool:
        m = await linked.message(jid, sent["messageId"])
        return m.get("isDeleted") is True and m["text"] is None and m["deletedAt"] is not None

    await eventually(gone)

    r = await linked.sim.post(f"/control/devices/{linked.sid}/clear-chat", json={"chat": jid})
    assert r.status_code == 200, r.text
    cleared = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.delete"
                                       and e["payload"]["scope"] == "chat")
    assert cleared["payload"]["chatJid"] == jid and cleared["payload"]["deletes"] == []

    async def all_gone() -> bool:
        return all(m["isDeleted"] for m in (await linked.messages(jid))["messages"])

    await eventually(all_gone)


async def test_reactions_add_aggregate_and_remove(linked: Linked) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    sent, _ = await linked.send(contact, content="react to this #react")
    mid = sent["messageId"]
    theirs = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.reaction"
                                      and not e["payload"]["reactions"][0]["fromMe"])
    assert {"tenantId", "reactionsCount", "reactions"} <= keys(theirs)
    assert set(theirs["payload"]["reactions"][0]) >= {"messageId", "chatJid", "actorJid", "emoji", "reactedAt",
                                                       "removed"}
    r = await linked.tenant.http.post(f"/chats/{jid}/messages/{mid}/reactions",
                                      json={"sessionId": linked.sid, "emoji": "👍"})
    assert r.status_code == 202

    async def two_thumbs() -> list[dict[str, Any]]:
        reactions = (await linked.message(jid, mid)).get("reactions", [])
        return reactions if reactions and reactions[0]["count"] == 2 else []

    agg = await eventually(two_thumbs)
    assert agg[0]["emoji"] == "👍"
    assert set(agg[0]["actors"]) == {jid, f"{linked.phone}@s.whatsapp.net"}

    r = await linked.tenant.http.post(f"/chats/{jid}/messages/{mid}/reactions",
                                      json={"sessionId": linked.sid, "emoji": None})
    assert r.status_code == 202
    await linked.ws.wait_for(lambda e: e["type"] == "session.messages.reaction"
                             and e["payload"]["reactions"][0]["removed"] is True)

    async def one_left() -> bool:
        reactions = (await linked.message(jid, mid)).get("reactions", [])
        return reactions == [{"emoji": "👍", "count": 1, "actors": [jid]}]

    await eventually(one_left)


async def test_contacts_and_profiles(linked: Linked) -> None:
    contact = new_phone()
    await linked.sim.post(f"/control/contacts/{contact}", json={"name": "Ada"})
    await linked.sim.post("/control/inject", json={"from": contact, "to": linked.phone, "text": "hi"})
    upsert = await linked.ws.wait_for(
        lambda e: e["type"] == "session.contacts.upsert"
        and any(c["id"] == f"{contact}@s.whatsapp.net" for c in e["payload"]["contacts"])
    )
    assert {"tenantId", "contactsCount", "contactsTruncated", "contacts"} <= keys(upsert)

    async def listed() -> list[dict[str, Any]]:
        contacts = (await linked.tenant.http.get("/contacts", params={"sessionId": linked.sid})).json()["contacts"]
        return [c for c in contacts if c["id"] == f"{contact}@s.whatsapp.net"]

    (found,) = await eventually(listed)
    assert found["notify"] == "Ada" and set(found) == {"id", "name", "notify", "imgUrl"}


async def test_presence_and_typing(linked: Linked) -> None:
    contact = new_phone()
    r = await linked.tenant.http.post(f"/chats/{contact}/presence/subscribe", json={"sessionId": linked.sid})
    assert r.status_code == 202
    await linked.sim.post(f"/control/contacts/{contact}/presence", json={"to": linked.phone, "presence": "composing"})
    presence = await linked.ws.wait_for(lambda e: e["type"] == "session.presence.update"
                                        and any(u["presence"] == "composing" for u in e["payload"]["updates"]))
    assert keys(presence) == {"tenantId", "chatJid", "updatesCount", "updates"}
    assert set(presence["payload"]["updates"][0]) == {"jid", "presence", "lastSeen"}

    r = await linked.tenant.http.post(f"/chats/{contact}/presence", json={"sessionId": linked.sid,
                                                                          "presence": "composing"})
    assert r.status_code == 202
    assert (await linked.outcome(r.json()["commandId"]))["status"] == "succeeded"
    r = await linked.tenant.http.post(f"/chats/{contact}/presence", json={"presence": "dancing"})
    assert r.status_code == 422


async def test_multiple_sessions_per_tenant(linked: Linked) -> None:
    second, _ = await link_session(linked.stack, linked.tenant, linked.ws)
    contact = new_phone()
    for sid in (linked.sid, second):
        r = await linked.tenant.http.post(f"/sessions/{sid}/messages", json={"to": contact, "content": f"from {sid}"})
        assert r.status_code == 202

    async def each_has_its_own() -> bool:
        texts = []
        for sid in (linked.sid, second):
            r = await linked.tenant.http.get(f"/chats/{contact}/messages", params={"sessionId": sid})
            texts.append([m["text"] for m in r.json()["messages"] if m["fromMe"]])
        return texts == [[f"from {linked.sid}"], [f"from {second}"]]

    await eventually(each_has_its_own)
    # Without sessionId the tenant's most recent session answers.
    assert (await linked.tenant.http.get("/chats")).json()["sessionId"] == second
    sessions = (await linked.tenant.http.get("/sessions")).json()["sessions"]
    assert {s["id"] for s in sessions} == {linked.sid, second}


async def test_idempotency_key_replays_the_first_answer(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    headers = {"Idempotency-Key": f"k-{new_phone()}"}
    body = {"to": contact, "content": "only once"}
    first = await linked.tenant.http.post(f"/sessions/{linked.sid}/messages", json=body, headers=headers)
    again = await linked.tenant.http.post(f"/sessions/{linked.sid}/messages", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    other = await linked.tenant.http.post(f"/sessions/{linked.sid}/messages", json={**body, "content": "x"},
                                          headers=headers)
    assert other.status_code == 422

    async def delivered_once() -> list[dict[str, Any]]:
        inbox = (await linked.sim.get(f"/control/accounts/{contact}/inbox")).json()["messages"]
        return inbox if inbox else []

    inbox = await eventually(delivered_once)
    assert [m["text"] for m in inbox] == ["only once"]


async def test_invalid_phone_numbers_are_422(linked: Linked) -> None:
    for bad in ("12", "abc", "5199@example.com"):
        r = await linked.tenant.http.post(f"/chats/{bad}/messages", json={"content": "x"})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await linked.tenant.http.post(f"/sessions/{linked.sid}/messages", json={"to": "+51 988 887 777",
                                                                                "content": "ok"})
    assert r.status_code == 202


async def test_presence_subscription_survives_a_reconnect(linked: Linked) -> None:
    contact = new_phone()
    r = await linked.tenant.http.post(f"/chats/{contact}/presence/subscribe", json={"sessionId": linked.sid})
    assert (await linked.outcome(r.json()["commandId"]))["status"] == "succeeded"
    await linked.sim.post(f"/control/devices/{linked.sid}/drop", json={})
    connects = len(linked.ws.of_type("session.status.connected"))
    await linked.ws.wait_for(lambda e: e["type"] == "session.status.disconnected")
    # The session is connected again once the device is back (no new event: it was never down for the domain).
    await eventually(lambda: _device_online(linked), timeout=20)
    await asyncio.sleep(0.5)
    await linked.sim.post(f"/control/contacts/{contact}/presence", json={"presence": "unavailable"})
    await linked.ws.wait_for(lambda e: e["type"] == "session.presence.update"
                             and any(u["presence"] == "unavailable" for u in e["payload"]["updates"]))
    assert len(linked.ws.of_type("session.status.connected")) >= connects


async def _device_online(linked: Linked) -> bool:
    device = (await linked.sim.get(f"/control/devices/{linked.sid}")).json()
    return bool(device.get("connected"))


async def test_link_by_pairing_code(stack: Stack, tenant: Tenant, ws_url) -> None:  # type: ignore[no-untyped-def]
    async with WsCollector(ws_url(tenant)) as ws, httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        sid = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
        await ws.wait_for(lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == sid)
        r = await tenant.http.post(f"/sessions/{sid}/pair-code", json={"phone": "+51 955 555 555"})
        assert r.status_code == 200, r.text
        code = r.json()["code"]
        assert r.json()["phone"] == "51955555555" and len(code) >= 8
        assert (await sim.post("/control/pair", json={"code": code})).status_code == 200
        connected = await ws.wait_for(lambda e: e["type"] == "session.status.connected" and e["sessionId"] == sid)
        assert connected["payload"]["phone"] == "51955555555"
        # Linked sessions refuse another code; bad numbers are 422.
        r = await tenant.http.post(f"/sessions/{sid}/pair-code", json={"phone": "51955555555"})
        assert r.status_code == 409 and r.json()["code"] == "already_connected"
        assert (await tenant.http.post(f"/sessions/{sid}/pair-code", json={"phone": "12"})).status_code == 422
