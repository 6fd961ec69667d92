"""Locations, contact cards and polls, both ways, through the simulator.

Out: ``POST /chats/{jid}/messages`` with ``location`` / ``contact`` / ``poll`` → the send intent →
the send pipeline → the contact's phone receives exactly one message of that kind; the upsert
carries ``type`` and ``rich``. In: a contact sends one → ``session.messages.upsert`` with ``rich``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Linked, new_phone
from tests.support.clients import eventually

VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Soporte\nTEL;type=CELL;waid=51988887777:+51 988 887 777\nEND:VCARD"
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("location", {"latitude": -12.0464, "longitude": -77.0428, "name": "Tienda Lima",
                  "address": "Av. Larco 123"}, "locationMessage"),
    ("contact", {"displayName": "Soporte", "vcard": VCARD}, "contactMessage"),
    ("poll", {"name": "¿Horario?", "options": ["Mañana", "Tarde", "Noche"], "selectableCount": 1},
     "pollCreationMessage"),
]


@pytest.mark.parametrize(("field", "value", "wa_type"), CASES, ids=[c[0] for c in CASES])
async def test_rich_message_out_and_in(linked: Linked, field: str, value: dict[str, Any], wa_type: str) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    accepted, upsert = await linked.send(contact, **{field: value})
    item = upsert["payload"]["messages"][0]
    assert item["type"] == wa_type and item["id"] == accepted["messageId"]
    assert item["rich"] == {"kind": field, **value} | ({"url": None} if field == "location" else {})
    assert item["text"] is None

    async def received() -> list[dict[str, Any]]:
        r = await linked.sim.get(f"/control/accounts/{contact}/inbox")
        return [m for m in r.json()["messages"] if m["id"] == accepted["messageId"]]

    got = await eventually(received)
    assert len(got) == 1 and got[0]["count"] == 1 and got[0]["rich"]["kind"] == field

    # The contact answers with the same kind of message.
    r = await linked.sim.post("/control/inject", json={"from": contact, "to": linked.phone,
                                                        "rich": {"kind": field, **value}})
    assert r.status_code == 200, r.text
    incoming_id = r.json()["id"]
    upsert = await linked.ws.wait_for(lambda e: e["type"] == "session.messages.upsert" and any(
        m["id"] == incoming_id for m in e["payload"]["messages"]))
    item = next(m for m in upsert["payload"]["messages"] if m["id"] == incoming_id)
    assert item["type"] == wa_type and item["rich"]["kind"] == field and not item["fromMe"]
    if field == "poll":
        assert item["rich"]["options"] == value["options"]


async def test_rich_message_validation(linked: Linked) -> None:
    contact = new_phone()
    bad = [
        {"location": {"latitude": 91, "longitude": 0}},
        {"contact": {"displayName": "x", "vcard": "not a card"}},
        {"poll": {"name": "q", "options": ["only one"]}},
        {"poll": {"name": "q", "options": ["a", "a"]}},
        {"location": {"latitude": 1, "longitude": 1}, "content": "and text"},
    ]
    for body in bad:
        r = await linked.tenant.http.post(f"/chats/{contact}/messages", json={"sessionId": linked.sid, **body})
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_poll_votes_arrive_with_a_running_tally(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    accepted, _ = await linked.send(contact, poll={"name": "¿Horario?", "options": ["Mañana", "Tarde", "Noche"]})
    poll_id = accepted["messageId"]

    async def vote(options: list[str]) -> dict[str, Any]:
        r = await linked.sim.post(f"/control/contacts/{contact}/vote",
                                  json={"to": linked.phone, "pollId": poll_id, "options": options})
        assert r.status_code == 200, r.text
        return await linked.ws.wait_for(lambda e: e["type"] == "session.polls.vote"
                                        and e["payload"]["selectedOptions"] == options)

    first = await vote(["Tarde"])
    assert first["payload"]["pollId"] == poll_id and first["payload"]["voter"] == f"{contact}@s.whatsapp.net"
    assert first["payload"]["tally"] == [{"name": "Mañana", "votes": 0}, {"name": "Tarde", "votes": 1},
                                         {"name": "Noche", "votes": 0}]
    changed = await vote(["Noche"])  # a new choice replaces the old one
    assert [o["votes"] for o in changed["payload"]["tally"]] == [0, 0, 1]
    withdrawn = await vote([])
    assert [o["votes"] for o in withdrawn["payload"]["tally"]] == [0, 0, 0]
    await vote(["Mañana"])

    async def in_read_model() -> dict[str, Any] | None:
        m = await linked.message(f"{contact}@s.whatsapp.net", poll_id)
        return m if m and m.get("pollTally") and m["pollTally"][0]["votes"] == 1 else None

    m = await eventually(in_read_model)
    assert m["type"] == "pollCreationMessage" and m["rich"]["options"] == ["Mañana", "Tarde", "Noche"]
