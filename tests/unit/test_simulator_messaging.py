"""Messaging parity rules of the simulator: forwards, edits, revokes, reactions, clears, presence, contacts."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.test_simulator_core import ALICE, BOB, CAROL, FakeLink, linked, make
from wa_simulator.app import _handle_frame
from wa_simulator.core import Conflict, Forbidden, NotFound, SimError, Simulator
from wa_simulator.scheduling import ManualScheduler

A_JID, B_JID, C_JID = (f"{p}@s.whatsapp.net" for p in (ALICE, BOB, CAROL))
THUMBS_UP = "\N{THUMBS UP SIGN}"


def quiet(**overrides: object) -> tuple[Simulator, ManualScheduler]:
    return make(contact_auto_reply=False, contact_auto_read=False, **overrides)


def test_forwarded_flag_and_push_name_reach_the_recipient() -> None:
    sim, _ = make()
    linked(sim, "a", ALICE)
    bob = linked(sim, "b", BOB)
    sim.set_contact(ALICE, name="Alice")  # the push name shown by her messages

    sim.send("a", msg_id="M1", to_jid=B_JID, text="fwd", forwarded=True)
    sim.inject(CAROL, BOB, "plain")

    forwarded, plain = bob.events("message")
    assert (forwarded["forwarded"], forwarded["pushName"]) == (True, "Alice")
    assert (plain["forwarded"], plain["pushName"]) == (False, f"Contact {CAROL[-4:]}")
    with pytest.raises(SimError):
        sim.send("a", msg_id="M2", to_jid=B_JID, text="x", forwarded="yes")


def test_first_message_from_a_new_contact_emits_contacts_once_before_it() -> None:
    sim, _ = quiet()
    link = linked(sim, "s1", ALICE)
    sim.set_contact(CAROL, name="Carol", saved_name="Carol (work)")

    sim.inject(CAROL, ALICE, "one")
    sim.inject(CAROL, ALICE, "two")
    sim.inject("99900000001", ALICE, "seed contacts came with the history sync")

    assert link.types()[-4:] == ["contacts", "message", "message", "message"]
    [contacts] = link.events("contacts")
    assert contacts["contacts"] == [[C_JID, "Carol (work)", "Carol"]]
    sim.set_contact(CAROL, name="Caroline")  # a known contact renamed: the account hears it
    assert link.events("contacts")[-1]["contacts"] == [[C_JID, "Carol (work)", "Caroline"]]
    assert sim.devices["s1"].retained[-1][1].find(b'"contacts"') > 0  # retained until acked


def test_edit_own_message_reaches_both_sides_and_the_contact_inbox() -> None:
    sim, clock = quiet()
    alice, laptop, bob = linked(sim, "a1", ALICE), linked(sim, "a2", ALICE), linked(sim, "b", BOB)
    sim.send("a1", msg_id="M1", to_jid=B_JID, text="helo")
    sim.send("a1", msg_id="M2", to_jid=C_JID, text="typo")

    ts = sim.edit("a1", B_JID, "M1", "hello")
    sim.edit("a1", C_JID, "M2", "fixed")

    [edit] = bob.events("edit")
    assert (edit["chat"], edit["id"], edit["text"], edit["fromMe"], edit["timestamp"]) == (
        A_JID,
        "M1",
        "hello",
        False,
        ts,
    )
    assert [(e["chat"], e["fromMe"]) for e in laptop.events("edit")] == [(B_JID, True), (C_JID, True)]
    assert alice.events("edit") == []  # the editing device knows already
    [entry] = sim.inbox(CAROL)
    assert (entry["text"], entry["edited"], entry["editedAt"], entry["originalText"]) == (
        "fixed",
        True,
        ts,
        "typo",
    )
    clock.advance(1)
    assert sim.edit("a1", B_JID, "M1", "hello") == ts  # a re-sent edit: same answer, no event
    assert len(bob.events("edit")) == 1


def test_edit_is_refused_for_others_unknown_revoked_and_old_messages() -> None:
    sim, clock = quiet(edit_window_seconds=900)
    linked(sim, "a", ALICE)
    sim.inject(CAROL, ALICE, "theirs", msg_id="C1")
    sim.send("a", msg_id="M1", to_jid=C_JID, text="mine")
    sim.send("a", msg_id="M2", to_jid=C_JID, text="old")

    with pytest.raises(Forbidden):
        sim.edit("a", C_JID, "C1", "x")
    with pytest.raises(NotFound):
        sim.edit("a", C_JID, "nope", "x")
    with pytest.raises(NotFound):
        sim.edit("a", B_JID, "M1", "x")  # right id, wrong chat
    with pytest.raises(SimError):
        sim.edit("a", C_JID, "M1", "")
    sim.revoke("a", C_JID, "M1")
    with pytest.raises(Conflict, match="revoked"):
        sim.edit("a", C_JID, "M1", "x")
    clock.advance(901)
    with pytest.raises(Conflict, match="too old"):
        sim.edit("a", C_JID, "M2", "x")


def test_revoke_is_idempotent_and_hides_the_message_from_history() -> None:
    sim, clock = quiet()
    linked(sim, "a", ALICE)
    bob = linked(sim, "b", BOB)
    sim.send("a", msg_id="M1", to_jid=B_JID, text="oops")

    ts = sim.revoke("a", B_JID, "M1")
    clock.advance(5)

    assert sim.revoke("a", B_JID, "M1") == ts
    [revoke] = bob.events("revoke")
    assert (revoke["chat"], revoke["id"], revoke["fromMe"], revoke["timestamp"]) == (A_JID, "M1", False, ts)
    [entry] = [m for m in sim.inbox(BOB) if m["id"] == "M1"]
    assert (entry["revoked"], entry["revokedAt"], entry["text"]) == (True, ts, None)
    with pytest.raises(Forbidden):
        sim.revoke("b", A_JID, "M1")  # not Bob's message
    relinked = linked(sim, "b2", BOB)
    assert "M1" not in [m["id"] for m in relinked.events("history_sync")[0]["messages"]]


def test_reactions_set_replace_and_remove() -> None:
    sim, _ = quiet()
    alice = linked(sim, "a", ALICE)
    linked(sim, "b", BOB)
    sim.send("b", msg_id="B1", to_jid=A_JID, text="react to me")

    ts = sim.react("a", B_JID, "B1", THUMBS_UP)
    sim.react("b", A_JID, "B1", "\N{HEAVY BLACK HEART}")  # the author may react too
    assert sim.react("a", B_JID, "B1", THUMBS_UP) == ts  # unchanged: no event
    sim.react("a", B_JID, "B1", "")

    [reaction] = alice.events("reaction")
    assert (reaction["chat"], reaction["actor"], reaction["fromMe"]) == (B_JID, B_JID, False)
    entry = sim.outbox(BOB)[0]
    assert entry["reactions"] == {BOB: "\N{HEAVY BLACK HEART}"}
    with pytest.raises(NotFound):
        sim.react("a", B_JID, "nope", THUMBS_UP)
    with pytest.raises(SimError):
        sim.react("a", B_JID, "B1", 3)


def test_contact_actions_reach_the_device() -> None:
    sim, _ = quiet()
    link = linked(sim, "a", ALICE)
    sim.send("a", msg_id="M1", to_jid=C_JID, text="ours")
    sim.inject(CAROL, ALICE, "theirs", msg_id="C1")
    sim.inject(CAROL, ALICE, "gone soon", msg_id="C2", forwarded=True)

    sim.contact_react(CAROL, ALICE, "M1", THUMBS_UP)
    sim.contact_edit(CAROL, ALICE, "C1", "theirs, edited")
    sim.contact_revoke(CAROL, ALICE, "C2")

    assert link.types()[-3:] == ["reaction", "edit", "revoke"]
    reaction, edit, revoke = link.events()[-3:]
    assert (reaction["id"], reaction["actor"], reaction["emoji"], reaction["chat"]) == (
        "M1",
        C_JID,
        THUMBS_UP,
        C_JID,
    )
    assert (edit["id"], edit["text"], edit["fromMe"]) == ("C1", "theirs, edited", False)
    assert (revoke["id"], revoke["chat"]) == ("C2", C_JID)
    assert sim.inbox(CAROL)[0]["reactions"] == {CAROL: THUMBS_UP}
    with pytest.raises(Forbidden):
        sim.contact_edit(CAROL, ALICE, "M1", "not hers")


def test_hash_react_makes_the_contact_react_after_reading() -> None:
    sim, clock = make(contact_auto_reply=False, contact_read_delay_ms=20)
    link = linked(sim, "a", ALICE)
    sim.send("a", msg_id="M1", to_jid=C_JID, text="like this #react")
    sim.send("a", msg_id="M2", to_jid=C_JID, text="not this")

    clock.advance(1)

    [reaction] = link.events("reaction")
    assert (reaction["id"], reaction["emoji"], reaction["actor"]) == ("M1", THUMBS_UP, C_JID)
    read_seq = next(r["seq"] for r in link.events("receipt") if r["status"] == "read" and "M1" in r["ids"])
    assert reaction["seq"] > read_seq


def test_clear_chat_reaches_every_device_and_empties_history() -> None:
    sim, _ = quiet()
    phone, laptop = linked(sim, "a1", ALICE), linked(sim, "a2", ALICE)
    sim.inject(CAROL, ALICE, "to be cleared")

    ts = sim.clear_chat("a1", C_JID)

    for link in (phone, laptop):
        [clear] = link.events("chat_clear")
        assert (clear["chat"], clear["timestamp"]) == (C_JID, ts)
    history = linked(sim, "a3", ALICE).events("history_sync")[0]
    assert [m["chat"] for m in history["messages"]].count(C_JID) == 0


def test_presence_subscription_and_account_online_changes() -> None:
    sim, clock = quiet()
    alice = linked(sim, "a", ALICE)
    bob = linked(sim, "b", BOB)

    sim.subscribe_presence("a", B_JID)
    sim.subscribe_presence("a", C_JID)
    [bob_now, carol_now] = alice.events("presence")
    assert (bob_now["jid"], bob_now["presence"]) == (B_JID, "available")
    assert (carol_now["jid"], carol_now["presence"]) == (C_JID, "available")

    clock.advance(10)
    sim.drop("b")
    gone = alice.events("presence")[-1]
    assert (gone["jid"], gone["presence"], gone["lastSeen"]) == (B_JID, "unavailable", int(clock.now()))
    sim.attach("b", FakeLink())
    assert alice.events("presence")[-1]["presence"] == "available"
    sim.contact_set_presence(CAROL, "unavailable")
    assert (alice.events("presence")[-1]["jid"], alice.events("presence")[-1]["presence"]) == (
        C_JID,
        "unavailable",
    )
    assert sim.devices["a"].retained[-1][1].find(b'"presence"') < 0  # never retained
    assert bob.events("presence") == []  # Bob subscribed to nothing

    sim.drop("a")  # subscriptions end with the connection
    again = FakeLink()
    sim.attach("a", again)
    sim.contact_set_presence(CAROL, "available")
    assert again.events("presence") == []


def test_chat_presence_between_accounts_and_to_scripted_contacts() -> None:
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    bob = linked(sim, "b", BOB)

    sim.chat_presence("a", B_JID, "composing")  # no subscription needed for chat states
    sim.chat_presence("a", C_JID, "recording")

    [typing] = bob.events("presence")
    assert (typing["chat"], typing["jid"], typing["presence"]) == (A_JID, A_JID, "composing")
    assert sim.contact_view(CAROL)["chatStates"] == {ALICE: "recording"}
    with pytest.raises(SimError):
        sim.chat_presence("a", B_JID, "available")
    sim.contact_set_presence(CAROL, "composing", ALICE)
    with pytest.raises(SimError):
        sim.contact_set_presence(CAROL, "composing")


def test_scripted_contact_types_before_replying_by_default() -> None:
    sim, clock = make()
    link = linked(sim, "a", ALICE)
    sim.send("a", msg_id="M1", to_jid=C_JID, text="hi")

    clock.advance(1)

    assert [e["presence"] for e in link.events("presence")] == ["composing", "paused"]
    [composing, paused] = link.events("presence")
    reply = link.events("message")[-1]
    assert composing["seq"] < paused["seq"] < reply["seq"]


def test_new_device_ops_are_answered() -> None:
    sim, _ = quiet()
    link = linked(sim, "s1", ALICE)
    sim.inject(CAROL, ALICE, "hi", msg_id="C1")
    ops = [
        {"op": "send", "rid": "1", "id": "M1", "to": C_JID, "text": "x", "forwarded": True},
        {"op": "edit", "rid": "2", "chat": C_JID, "id": "M1", "text": "y"},
        {"op": "react", "rid": "3", "chat": C_JID, "id": "C1", "emoji": THUMBS_UP},
        {"op": "revoke", "rid": "4", "chat": C_JID, "id": "M1"},
        {"op": "presence_subscribe", "rid": "5", "jid": C_JID},
        {"op": "chat_presence", "rid": "6", "chat": C_JID, "presence": "paused"},
        {"op": "edit", "rid": "7", "chat": C_JID, "id": "C1", "text": "not mine"},
        {"op": "edit", "rid": "8", "chat": C_JID, "id": "M1", "text": "after revoke"},
    ]
    for op in ops:
        _handle_frame(sim, "s1", link, orjson.dumps(op))
    results = {r["rid"]: r for r in link.frames if r["op"] == "result"}
    assert [results[str(i)]["ok"] for i in range(1, 9)] == [True] * 6 + [False, False]
    assert all(isinstance(results[r]["timestamp"], int) for r in ("2", "3", "4"))
    assert "author" in results["7"]["error"] and "revoked" in results["8"]["error"]
    assert sim.inbox(CAROL)[0]["forwarded"] is True
