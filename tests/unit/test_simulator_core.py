"""The simulator's rules, on virtual time and fake connections (no sockets)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from wa_simulator.config import Settings
from wa_simulator.core import (
    CLOSE_DROPPED,
    CLOSE_LOGGED_OUT,
    CLOSE_REPLACED,
    CLOSE_RESET,
    Conflict,
    NotFound,
    SimError,
    Simulator,
    jid_to_phone,
    normalize_phone,
)
from wa_simulator.scheduling import ManualScheduler

ALICE, BOB, CAROL = "15550000001", "15550000002", "15550000003"


class FakeLink:
    """Records what the core pushes to a device connection."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def push(self, frame: bytes) -> None:
        assert self.closed is None, "pushed after close"
        self.frames.append(orjson.loads(frame))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["op"] == "event" and (kind is None or f["type"] == kind)]

    def types(self) -> list[str]:
        return [f["type"] for f in self.events()]


def make(**overrides: Any) -> tuple[Simulator, ManualScheduler]:
    scheduler = ManualScheduler()
    settings = Settings.model_construct(**overrides)  # defaults only: never the caller's SIM_* environment
    return Simulator(settings, scheduler), scheduler


def linked(sim: Simulator, session_id: str, phone: str) -> FakeLink:
    link = FakeLink()
    sim.attach(session_id, link)
    sim.scan(phone, session_id=session_id)
    return link


def test_unlinked_device_gets_rotating_qr_codes_that_expire() -> None:
    sim, clock = make(qr_rotate_seconds=20, qr_ttl_seconds=20)
    link = FakeLink()
    sim.attach("s1", link)
    [first] = link.events("qr")
    assert first["seq"] == 1
    assert first["expiresAt"] == int((clock.now() + 20) * 1000)

    clock.advance(20)

    second = link.events("qr")[-1]
    assert second["seq"] == 2 and second["code"] != first["code"]
    with pytest.raises(NotFound):
        sim.scan(ALICE, qr=first["code"])  # rotated away
    assert len(sim.devices["s1"].retained) == 0  # QR codes are never replayed


def test_expired_qr_is_refused() -> None:
    sim, clock = make(qr_rotate_seconds=60, qr_ttl_seconds=5)
    link = FakeLink()
    sim.attach("s1", link)
    code = link.events("qr")[0]["code"]
    clock.advance(6)
    with pytest.raises(Conflict, match="expired"):
        sim.scan(ALICE, qr=code)


def test_scan_links_and_sends_connected_then_history() -> None:
    sim, _ = make(history_seed_contacts=2)
    link = FakeLink()
    sim.attach("s1", link)
    code = link.events("qr")[0]["code"]

    sim.scan(ALICE, qr=code)

    assert link.types() == ["qr", "connected", "history_sync"]
    connected, history = link.events()[1:]
    assert connected["phone"] == ALICE
    assert len(history["messages"]) == 2
    assert [c[1] for c in history["contacts"]] == ["Seed Contact 1", "Seed Contact 2"]
    assert sim.devices["s1"].retained[0][0] == history["seq"]  # history is retained, Connected is not
    with pytest.raises(Conflict):
        sim.scan(BOB, session_id="s1")


def test_send_is_idempotent_per_sender_and_message_id() -> None:
    sim, clock = make(contact_auto_reply=False, contact_auto_read=False)
    link = linked(sim, "s1", ALICE)

    msg, duplicate = sim.send("s1", msg_id="M1", to_jid=f"{CAROL}@s.whatsapp.net", text="hi")
    again, duplicate_again = sim.send("s1", msg_id="M1", to_jid=f"{CAROL}@s.whatsapp.net", text="hi")

    assert (duplicate, duplicate_again) == (False, True)
    assert again is msg
    [entry] = sim.inbox(CAROL)
    assert (entry["id"], entry["count"], entry["attempts"]) == ("M1", 1, 2)
    assert link.events("receipt") == []  # deferred: the send result goes out first
    clock.advance(0)
    [receipt] = link.events("receipt")
    assert (receipt["ids"], receipt["status"], receipt["chat"]) == (
        ["M1"],
        "delivered",
        f"{CAROL}@s.whatsapp.net",
    )
    assert sim.stats_view()["duplicates"] == 1


def test_same_id_from_another_account_is_a_different_message() -> None:
    sim, _ = make(contact_auto_reply=False)
    linked(sim, "a", ALICE)
    linked(sim, "b", BOB)
    sim.send("a", msg_id="X", to_jid=f"{CAROL}@s.whatsapp.net", text="from alice")
    _, duplicate = sim.send("b", msg_id="X", to_jid=f"{CAROL}@s.whatsapp.net", text="from bob")
    assert duplicate is False
    assert sorted(m["from"] for m in sim.inbox(CAROL)) == [ALICE, BOB]


def test_scripted_contact_reads_and_replies() -> None:
    sim, clock = make(contact_read_delay_ms=20, contact_reply_delay_ms=50, contact_reply_prefix="echo: ")
    link = linked(sim, "s1", ALICE)
    sim.send("s1", msg_id="M1", to_jid=f"{CAROL}@s.whatsapp.net", text="hello")

    clock.advance(0.02)
    assert [r["status"] for r in link.events("receipt")] == ["delivered", "read"]
    assert link.events("message") == []

    clock.advance(0.03)
    [reply] = link.events("message")
    assert (reply["text"], reply["replyTo"], reply["fromMe"]) == ("echo: hello", "M1", False)
    assert reply["chat"] == reply["sender"] == f"{CAROL}@s.whatsapp.net"
    assert sim.outbox(ALICE)[0]["status"] == "read"


def test_scripted_contact_behaviour_can_be_switched_off() -> None:
    sim, clock = make()
    link = linked(sim, "s1", ALICE)
    sim.set_contact(CAROL, auto_reply=False, auto_read=False)
    sim.send("s1", msg_id="M1", to_jid=f"{CAROL}@s.whatsapp.net", text="quiet")
    clock.advance(5)
    assert [r["status"] for r in link.events("receipt")] == ["delivered"]
    assert link.events("message") == []
    assert clock.pending == 0


def test_message_between_accounts_reaches_every_device_and_read_receipt_comes_back() -> None:
    sim, clock = make()
    alice_phone = linked(sim, "a1", ALICE)
    alice_laptop = linked(sim, "a2", ALICE)
    bob = linked(sim, "b1", BOB)

    sim.send("a1", msg_id="M1", to_jid=f"{BOB}@s.whatsapp.net", text="hi bob")
    clock.advance(0)

    [incoming] = bob.events("message")
    assert (incoming["fromMe"], incoming["chat"]) == (False, f"{ALICE}@s.whatsapp.net")
    [copy] = alice_laptop.events("message")  # multi-device: the other device sees its own message
    assert (copy["fromMe"], copy["chat"]) == (True, f"{BOB}@s.whatsapp.net")
    assert alice_phone.events("message") == []
    assert sim.mark_read("b1", f"{ALICE}@s.whatsapp.net", ["M1", "unknown"]) == ["M1"]
    for link in (alice_phone, alice_laptop):
        assert [(r["status"], r["ids"]) for r in link.events("receipt")] == [
            ("delivered", ["M1"]),
            ("read", ["M1"]),
        ]
    assert sim.mark_read("b1", f"{ALICE}@s.whatsapp.net", ["M1"]) == []  # already read


def test_events_are_retained_until_acked_and_replayed_before_connected() -> None:
    sim, _ = make()
    linked(sim, "s1", ALICE)
    sim.detach("s1", sim.devices["s1"].link)  # type: ignore[arg-type]
    sim.inject(CAROL, ALICE, "while you were away", msg_id="C1")
    sim.inject(CAROL, ALICE, "still away", msg_id="C2")

    link = FakeLink()
    sim.attach("s1", link)

    assert link.types() == ["history_sync", "contacts", "message", "message", "connected"]
    seqs = [e["seq"] for e in link.events()]
    assert seqs == sorted(seqs)
    sim.ack("s1", seqs[3], link)  # up to the second message
    assert [s for s, _ in sim.devices["s1"].retained] == []

    relink = FakeLink()
    sim.attach("s1", relink, ack=0)
    assert relink.types() == ["connected"]


def test_ack_is_clamped_and_ignored_from_a_replaced_connection() -> None:
    sim, _ = make()
    old = linked(sim, "s1", ALICE)
    sim.inject(CAROL, ALICE, "one")
    new = FakeLink()
    sim.attach("s1", new)

    assert old.closed is not None and old.closed[0] == CLOSE_REPLACED
    sim.ack("s1", 10_000, old)  # the old owner is ignored
    assert len(sim.devices["s1"].retained) == 3  # history, contacts (Carol's name), message
    sim.ack("s1", 10_000, new)  # from the future: clamped to what was emitted
    assert sim.devices["s1"].acked == sim.devices["s1"].last_seq
    sim.detach("s1", old)  # a late close of the old connection must not detach the new one
    assert sim.devices["s1"].link is new


def test_retention_is_capped() -> None:
    sim, _ = make(max_retained_events=3)
    linked(sim, "s1", ALICE)
    for i in range(5):
        sim.inject(CAROL, ALICE, f"m{i}")
    device = sim.devices["s1"]
    assert len(device.retained) == 3
    assert sim.stats_view()["retainedDropped"] == 4  # history, contacts + 2 oldest messages


def test_drop_keeps_the_device_linked() -> None:
    sim, _ = make()
    link = linked(sim, "s1", ALICE)
    sim.drop("s1")
    assert link.closed is not None and link.closed[0] == CLOSE_DROPPED
    assert sim.devices["s1"].phone == ALICE and sim.devices["s1"].link is None
    with pytest.raises(Conflict):
        sim.drop("s1")


def test_logout_unlinks_and_the_number_becomes_a_scripted_contact() -> None:
    sim, clock = make()
    alice = linked(sim, "a1", ALICE)
    bob = linked(sim, "b1", BOB)

    sim.logout("a1")

    assert alice.closed is not None and alice.closed[0] == CLOSE_LOGGED_OUT
    assert alice.events()[-1]["type"] == "logged_out"
    assert b'"logged_out"' in sim.devices["a1"].retained[-1][1]  # kept for replay until acked
    sim.send("b1", msg_id="M1", to_jid=f"{ALICE}@s.whatsapp.net", text="hello?")
    clock.advance(1)
    assert [m["text"] for m in bob.events("message")] == ["echo: hello?"]
    with pytest.raises(Conflict):
        sim.send("a1", msg_id="M2", to_jid=f"{BOB}@s.whatsapp.net", text="x")


def test_pair_code_links_the_device_that_asked() -> None:
    sim, clock = make(pair_code_ttl_seconds=60)
    link = FakeLink()
    sim.attach("s1", link)
    code = sim.request_pair_code("s1", "+" + ALICE)
    assert len(code) == 9 and code[4] == "-"

    sim.pair(code.replace("-", "").lower())

    assert link.events("connected")[0]["phone"] == ALICE
    link2 = FakeLink()
    sim.attach("s2", link2)
    code2 = sim.request_pair_code("s2", BOB)
    clock.advance(61)
    with pytest.raises(Conflict, match="expired"):
        sim.pair(code2)


def test_reset_closes_connections_and_cancels_pending_work() -> None:
    sim, clock = make()
    link = linked(sim, "s1", ALICE)
    sim.send("s1", msg_id="M1", to_jid=f"{CAROL}@s.whatsapp.net", text="x")

    sim.reset()
    clock.advance(5)

    assert link.closed is not None and link.closed[0] == CLOSE_RESET
    assert sim.stats_view()["messages"] == 0
    assert sim.inbox(ALICE) == []


@pytest.mark.parametrize("raw", ["123", "+12a4567", "1" * 16, 15550000001, "１２３４５６"])
def test_invalid_phone_numbers_are_refused(raw: object) -> None:
    with pytest.raises(SimError):
        normalize_phone(raw)


def test_jids() -> None:
    assert jid_to_phone("15550000001@s.whatsapp.net") == "15550000001"
    with pytest.raises(SimError):
        jid_to_phone("120363000000@g.us")
