"""Groups through the simulator: create, sync with metadata, add/promote/demote/remove, invite link, leave.

Every outcome is an event on the tenant's WebSocket (``session.groups.upsert``,
``session.groups.participants``) and a command outcome at ``GET /commands/{id}``.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Linked, new_phone
from tests.support.clients import eventually


async def test_group_lifecycle(linked: Linked) -> None:
    http, ws = linked.tenant.http, linked.ws
    me = f"{linked.phone}@s.whatsapp.net"
    alice, bob = new_phone(), new_phone()

    r = await http.post("/groups", json={"subject": "Ventas Lima", "participants": [alice]})
    assert r.status_code == 202, r.text
    created = await linked.outcome(r.json()["commandId"])
    assert created["status"] == "succeeded", created
    group = created["result"]["groupJid"]
    assert group.endswith("@g.us")
    upsert = await ws.wait_for(lambda e: e["type"] == "session.groups.upsert"
                               and any(g["id"] == group for g in e["payload"]["groups"]))
    info = next(g for g in upsert["payload"]["groups"] if g["id"] == group)
    assert info["subject"] == "Ventas Lima" and info["owner"] == me and info["size"] == 2
    assert {p["id"]: p["admin"] for p in info["participants"]} == {me: "superadmin", f"{alice}@s.whatsapp.net": None}

    for action, who in (("add", bob), ("promote", bob), ("demote", bob), ("remove", bob)):
        r = await http.post(f"/groups/{group}/participants", json={"action": action, "participants": [who]})
        assert r.status_code == 202, r.text
        done = await linked.outcome(r.json()["commandId"])
        assert done["status"] == "succeeded" and done["result"]["changed"] == "1", (action, done)
        event = await ws.wait_for(lambda e, a=action: e["type"] == "session.groups.participants"
                                  and e["payload"]["id"] == group and e["payload"]["action"] == a)
        assert event["payload"]["participants"] == [f"{who}@s.whatsapp.net"] and event["payload"]["author"] == me

    # The read model: metadata from the create, participants from each change.
    async def projected() -> dict[str, Any] | None:
        r = await http.get(f"/groups/{group}")
        body: dict[str, Any] = r.json()
        assert r.status_code == 200, r.text
        return body if body["size"] == 2 and {p["id"]: p["admin"] for p in body["participants"]}[me] else None

    view = await eventually(projected)
    assert view["subject"] == "Ventas Lima" and not view["left"]
    listed = (await http.get("/groups")).json()
    assert listed["sessionId"] == linked.sid and [g["id"] for g in listed["groups"]] == [group]

    r = await http.post(f"/groups/{group}/invite-link")
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        link = (await linked.outcome(r.json()["commandId"]))["result"]["inviteLink"]
    else:
        link = r.json()["inviteLink"]
    assert link.startswith("https://chat.whatsapp.com/")

    r = await http.post("/groups/sync")
    assert r.status_code == 202
    await linked.outcome(r.json()["commandId"])

    r = await http.post(f"/groups/{group}/leave")
    assert r.status_code == 202
    assert (await linked.outcome(r.json()["commandId"]))["status"] == "succeeded"
    left = await ws.wait_for(lambda e: e["type"] == "session.groups.participants" and e["payload"]["action"] == "leave")
    assert left["payload"]["participants"] == [me]

    async def marked_left() -> bool:
        return bool((await http.get(f"/groups/{group}")).json()["left"])

    await eventually(marked_left)
    assert (await http.get("/groups/120363000000000001@g.us")).status_code == 404
    # Out of the group: the runner reports WhatsApp's refusal as the command's failure.
    r = await http.post(f"/groups/{group}/participants", json={"action": "add", "participants": [alice]})
    failed = await linked.outcome(r.json()["commandId"])
    assert failed["status"] == "failed" and failed["code"] == "whatsapp_error"


async def test_group_routes_refuse_bad_input(linked: Linked) -> None:
    http = linked.tenant.http
    assert (await http.post("/groups", json={"subject": "", "participants": ["1"]})).status_code == 422
    assert (await http.post("/groups", json={"subject": "x", "participants": []})).status_code == 422
    r = await http.post("/groups/51988887777@s.whatsapp.net/participants",
                        json={"action": "add", "participants": ["51988887777"]})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await http.post("/groups/120363000000000001@g.us/participants", json={"action": "kick", "participants": ["1"]})
    assert r.status_code == 422


async def test_send_to_a_group_with_mentions(linked: Linked) -> None:
    http = linked.tenant.http
    alice, bob = new_phone(), new_phone()
    r = await http.post("/groups", json={"subject": "Turno noche", "participants": [alice, bob]})
    group = (await linked.outcome(r.json()["commandId"]))["result"]["groupJid"]

    accepted, upsert = await linked.send(group, content=f"Hola @{alice}, ¿confirmas?", mentions=[alice])
    item = upsert["payload"]["messages"][0]
    assert item["remoteJid"] == group and item["mentions"] == [f"{alice}@s.whatsapp.net"]
    for member in (alice, bob):
        inbox = (await linked.sim.get(f"/control/accounts/{member}/inbox")).json()["messages"]
        got = [m for m in inbox if m["id"] == accepted["messageId"]]
        assert len(got) == 1 and got[0]["mentions"] == [f"{alice}@s.whatsapp.net"], member
    r = await http.post(f"/chats/{group}/messages", json={"media": {"kind": "image", "base64": "aGk="},
                                                           "mentions": [alice]})
    assert r.status_code == 422


async def test_changes_by_another_admin_reach_the_members_event_log(linked: Linked) -> None:
    from tests.e2e.conftest import link_session

    sid_b, phone_b = await link_session(linked.stack, linked.tenant, linked.ws)
    me = f"{linked.phone}@s.whatsapp.net"
    r = await linked.tenant.http.post("/groups", json={"subject": "Compras", "participants": [phone_b],
                                                        "sessionId": linked.sid})
    group = (await linked.outcome(r.json()["commandId"]))["result"]["groupJid"]
    added = await linked.ws.wait_for(lambda e: e["type"] == "session.groups.participants"
                                     and e["sessionId"] == sid_b and e["payload"]["id"] == group)
    assert added["payload"]["action"] == "add" and added["payload"]["author"] == me
    assert added["payload"]["participants"] == [f"{phone_b}@s.whatsapp.net"]
    r = await linked.tenant.http.post(f"/groups/{group}/participants",
                                      json={"action": "promote", "participants": [phone_b], "sessionId": linked.sid})
    assert r.status_code == 202
    await linked.ws.wait_for(lambda e: e["type"] == "session.groups.participants" and e["sessionId"] == sid_b
                             and e["payload"]["action"] == "promote")
