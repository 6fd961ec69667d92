"""Incoming calls: recorded as ``session.call.received``; with the session's setting on, rejected and answered
with the auto-reply (through the send pipeline, exactly once)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Linked, new_phone
from tests.support.clients import eventually


async def call(linked: Linked, caller: str) -> str:
    r = await linked.sim.post(f"/control/contacts/{caller}/call", json={"to": linked.phone})
    assert r.status_code == 200, r.text
    call_id: str = r.json()["id"]
    return call_id


async def test_calls_are_recorded_and_rejected_with_a_reply_when_set(linked: Linked) -> None:
    caller = new_phone()
    await linked.quiet_contact(caller)
    first = await call(linked, caller)
    event = await linked.ws.wait_for(lambda e: e["type"] == "session.call.received" and e["payload"]["id"] == first)
    assert event["payload"]["status"] == "offer" and event["payload"]["from"] == f"{caller}@s.whatsapp.net"
    assert (await linked.sim.get(f"/control/calls/{first}")).json()["status"] == "ringing"

    reply = "No atendemos llamadas; escríbenos por aquí."
    r = await linked.tenant.http.post(f"/sessions/{linked.sid}/calls/settings",
                                      json={"rejectCalls": True, "replyText": reply})
    assert r.status_code == 202, r.text
    assert (await linked.outcome(r.json()["commandId"]))["status"] == "succeeded"
    await linked.ws.wait_for(lambda e: e["type"] == "session.settings.updated" and e["payload"]["rejectCalls"])

    second = await call(linked, caller)
    event = await linked.ws.wait_for(lambda e: e["type"] == "session.call.received" and e["payload"]["id"] == second)
    assert event["payload"]["status"] == "rejected"

    async def rejected() -> bool:
        return bool((await linked.sim.get(f"/control/calls/{second}")).json()["status"] == "rejected")

    await eventually(rejected)

    async def replied() -> list[dict[str, Any]]:
        inbox = (await linked.sim.get(f"/control/accounts/{caller}/inbox")).json()["messages"]
        return [m for m in inbox if m["text"] == reply]

    got = await eventually(replied)
    assert len(got) == 1 and got[0]["count"] == 1

    r = await linked.tenant.http.post(f"/sessions/{linked.sid}/calls/settings", json={"rejectCalls": False})
    assert (await linked.outcome(r.json()["commandId"]))["status"] == "succeeded"
    third = await call(linked, caller)
    event = await linked.ws.wait_for(lambda e: e["type"] == "session.call.received" and e["payload"]["id"] == third)
    assert event["payload"]["status"] == "offer"
