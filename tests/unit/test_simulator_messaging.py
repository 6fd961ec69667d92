"""Messaging parity rules of the simulator: forwards, edits, revokes, reactions, clears, presence, contacts, media."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from tests.unit.test_simulator_core import ALICE, BOB, CAROL, FakeLink, linked, make
from wa_simulator.app import _handle_frame
from wa_simulator.core import Conflict, Forbidden, NotFound, SimError, Simulator, StoredMedia
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


# ------------------------------------------------------------------------ media

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
MEDIA_KEYS = {"url", "kind", "mime", "size", "sha256", "fileName", "ptt", "width", "height", "duration"}


def upload(sim: Simulator, data: bytes = PNG, mime: str = "image/png") -> StoredMedia:
    """What the app does once an upload's bytes are on disk."""
    return sim.add_media(sim.new_media_id(), len(data), hashlib.sha256(data).hexdigest(), mime)


def image(stored: StoredMedia, **overrides: Any) -> dict[str, Any]:
    return {
        "url": stored.url,
        "kind": "image",
        "mime": "image/png",
        "size": stored.size,
        "sha256": stored.sha256,
        "width": 640,
        "height": 480,
        **overrides,
    }


def test_media_message_carries_its_media_to_the_recipient_and_the_views() -> None:
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    laptop = linked(sim, "a2", ALICE)
    bob = linked(sim, "b", BOB)
    stored = upload(sim)

    msg, duplicate = sim.send("a", msg_id="M1", to_jid=B_JID, text="look", media=image(stored))

    assert duplicate is False
    [event] = [e for e in bob.events("message") if e["id"] == "M1"]
    assert event["text"] == "look"
    assert event["media"] == {
        "url": stored.url,
        "kind": "image",
        "mime": "image/png",
        "size": len(PNG),
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "fileName": None,
        "ptt": False,
        "width": 640,
        "height": 480,
        "duration": None,
    }
    assert laptop.events("message")[-1]["media"] == event["media"]  # the sender's other devices
    [entry] = [m for m in sim.inbox(BOB) if m["id"] == "M1"]
    assert (entry["text"], entry["media"]) == ("look", event["media"])
    assert sim.outbox(ALICE)[-1]["media"] == event["media"]
    history = linked(sim, "b2", BOB).events("history_sync")[0]["messages"]
    assert [m["media"] for m in history if m["id"] == "M1"] == [event["media"]]
    assert [m["media"] for m in sim.inbox(ALICE)] == [None] * len(sim.inbox(ALICE))  # texts: null
    assert msg.media is not None and msg.media.url == stored.url


def test_media_caption_is_optional_and_voice_notes_are_audio() -> None:
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    voice = upload(sim, b"OggS" + bytes(100), "audio/ogg; codecs=opus")
    doc = upload(sim, b"%PDF-1.4 ...", "application/pdf")

    sim.send(
        "a",
        msg_id="V1",
        to_jid=C_JID,
        text=None,
        media={"url": voice.url, "kind": "audio", "mime": voice.mime, "size": voice.size, "ptt": True},
    )
    sim.send(
        "a",
        msg_id="D1",
        to_jid=C_JID,
        text="",
        media={"url": doc.url, "kind": "document", "mime": doc.mime, "size": doc.size, "fileName": "a.pdf"},
    )

    v1, d1 = sim.inbox(CAROL)
    assert (v1["text"], v1["media"]["ptt"], v1["media"]["sha256"]) == (None, True, voice.sha256)
    assert (d1["text"], d1["media"]["fileName"], d1["media"]["kind"]) == (None, "a.pdf", "document")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"url": "/v1/media/" + "0" * 32}, "not a stored upload"),
        ({"url": "http://elsewhere/x.png"}, "not a stored upload"),
        ({"url": None}, "not a stored upload"),
        ({"kind": "gif"}, "media.kind"),
        ({"mime": ""}, "media.mime"),
        ({"size": 1}, "media.size"),
        ({"size": None}, "media.size"),
        ({"size": True}, "media.size"),
        ({"sha256": "ab" * 32}, "sha256"),
        ({"ptt": True}, "only valid for kind 'audio'"),
        ({"ptt": "yes"}, "media.ptt"),
        ({"fileName": 3}, "media.fileName"),
        ({"width": -1}, "media.width"),
        ({"duration": True}, "media.duration"),
        ({"thumbnail": "..."}, "unknown media keys"),
    ],
)
def test_invalid_media_is_refused_and_nothing_is_delivered(change: dict[str, Any], error: str) -> None:
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    media = image(upload(sim), **change)

    with pytest.raises(SimError, match=error):
        sim.send("a", msg_id="M1", to_jid=C_JID, text="x", media=media)
    with pytest.raises(SimError, match=error):
        sim.inject(CAROL, ALICE, "x", msg_id="C1", media=media)

    assert sim.inbox(CAROL) == []
    assert "C1" not in [m["id"] for m in sim.inbox(ALICE)]
    assert sim.stats.messages == sim.settings.history_seed_contacts  # only the seeded history


def test_media_must_be_an_object_and_a_caption_a_string() -> None:
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    with pytest.raises(SimError, match="media must be an object"):
        sim.send("a", msg_id="M1", to_jid=C_JID, text="x", media="/v1/media/abc")
    with pytest.raises(SimError, match="caption"):
        sim.send("a", msg_id="M1", to_jid=C_JID, text=3, media=image(upload(sim)))
    with pytest.raises(SimError, match="text must be a string"):
        sim.inject(CAROL, ALICE, None)  # neither text nor media


def test_media_send_is_idempotent_on_the_message_id() -> None:
    """A re-send after a lost answer uploads again: same id, so the first message stands."""
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    first_upload, retry_upload = upload(sim), upload(sim)

    first, dup1 = sim.send("a", msg_id="M1", to_jid=C_JID, text="look", media=image(first_upload))
    again, dup2 = sim.send("a", msg_id="M1", to_jid=C_JID, text="look", media=image(retry_upload))

    assert (dup1, dup2) == (False, True)
    assert again is first
    [entry] = sim.inbox(CAROL)
    assert (entry["count"], entry["attempts"], entry["media"]["url"]) == (1, 2, first_upload.url)


def test_injected_media_reaches_the_device_and_the_contact_replies_to_the_caption() -> None:
    sim, clock = make(contact_auto_read=False, contact_typing=False)
    link = linked(sim, "a", ALICE)
    stored = upload(sim, b"OggS voice", "audio/ogg")
    voice = {"url": stored.url, "kind": "audio", "mime": "audio/ogg", "size": stored.size, "ptt": True}

    msg, _ = sim.inject(CAROL, ALICE, None, msg_id="C1", media=voice)
    sim.send("a", msg_id="M1", to_jid=C_JID, text="nice pic", media=image(upload(sim)))
    clock.advance(1)

    event = next(e for e in link.events("message") if e["id"] == "C1")
    assert (event["text"], event["media"]["ptt"], event["media"]["url"]) == (None, True, stored.url)
    assert msg.as_dict()["media"] == event["media"]
    reply = link.events("message")[-1]
    assert (reply["replyTo"], reply["text"], reply["media"]) == ("M1", "echo: nice pic", None)


def test_revoking_media_drops_it_and_reset_forgets_uploads() -> None:
    sim, _ = quiet()
    linked(sim, "a", ALICE)
    stored = upload(sim)
    sim.send("a", msg_id="M1", to_jid=C_JID, text="oops", media=image(stored))

    sim.revoke("a", C_JID, "M1")

    [entry] = sim.inbox(CAROL)
    assert (entry["revoked"], entry["text"], entry["media"]) == (True, None, None)
    assert sim.stored_media(stored.id) == stored
    assert sim.stats_view()["mediaStored"] == 1
    sim.reset()
    with pytest.raises(NotFound):
        sim.stored_media(stored.id)
