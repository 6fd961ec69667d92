"""Contract suite of the ``WhatsAppDriver`` port: every adapter must pass it.

The ``driver_factory`` fixture is parametrized by adapter name (``ADAPTERS``). An
adapter builds drivers and plays "the rest of the world" (a phone scanning a QR,
a contact writing, the network failing). To add ``neonize``: write a
``NeonizeAdapter`` with the same methods, add it to ``ADAPTERS`` and
``driver_factory``; world actions it cannot automate call ``pytest.skip``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from session_runner.drivers.port import (
    ChatCleared,
    Connected,
    ContactsUpdate,
    Disconnected,
    DriverError,
    DriverEvent,
    HistorySync,
    IncomingMedia,
    IncomingMessage,
    LoggedOut,
    MessageEdited,
    MessageRevoked,
    OutcomeUnknown,
    OutgoingMedia,
    PresenceUpdate,
    QrCode,
    Reaction,
    Receipt,
    WhatsAppDriver,
)
from session_runner.drivers.sim import SimDriver
from tests.integration.conftest_sim import (
    SimControl,
    free_port,
    jid,
    new_phone,
    new_session_id,
    start_simulator,
    stop_simulator,
    wait_ready,
)

pytestmark = pytest.mark.integration

ADAPTERS = ["sim", "neonize"]

E = TypeVar("E")


class Recorder:
    """An event handler that keeps every event and lets tests wait for one."""

    def __init__(self) -> None:
        self.events: list[DriverEvent] = []
        self.session_ids: set[str] = set()
        self._changed = asyncio.Event()

    async def __call__(self, session_id: str, event: DriverEvent) -> None:
        self.session_ids.add(session_id)
        self.events.append(event)
        self._changed.set()

    def position(self, event: DriverEvent) -> int:
        """Index of this very event (re-deliveries are equal by value, so ``list.index`` won't do)."""
        return next(i for i, e in enumerate(self.events) if e is event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(
        self, kind: type[E], pred: Callable[[E], bool] | None = None, *, since: int = 0, timeout: float = 5.0
    ) -> E:
        """The first event of ``kind`` (matching ``pred``) at index ``since`` or later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self.events[since:]:
                if isinstance(event, kind) and (pred is None or pred(event)):
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout}s; got {self.events!r}")
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                pass


class Adapter(Protocol):
    """What the contract suite needs from an adapter under test."""

    name: str

    def driver(self, request_timeout: float = 5.0) -> WhatsAppDriver: ...
    def unreachable_driver(self) -> WhatsAppDriver: ...
    def new_phone(self) -> str: ...
    def new_session_id(self) -> str: ...
    async def scan_qr(self, code: str, phone: str) -> None: ...
    async def pair(self, code: str) -> None: ...
    async def contact_says(self, contact: str, to: str, text: str, *, forwarded: bool = False) -> str: ...
    async def contact_sends_media(
        self,
        contact: str,
        to: str,
        data: bytes,
        *,
        kind: str,
        mime: str,
        caption: str | None = None,
        file_name: str | None = None,
        ptt: bool = False,
    ) -> str: ...
    async def configure_contact(self, phone: str, **flags: bool) -> None: ...
    async def name_contact(self, phone: str, name: str, saved_name: str | None = None) -> None: ...
    async def contact_reacts(self, contact: str, to: str, message_id: str, emoji: str) -> None: ...
    async def contact_edits(self, contact: str, to: str, message_id: str, text: str) -> None: ...
    async def contact_revokes(self, contact: str, to: str, message_id: str) -> None: ...
    async def contact_presence(self, contact: str, presence: str, to: str | None = None) -> None: ...
    async def clear_chat_on_phone(self, session_id: str, chat_jid: str) -> None: ...
    async def received_by(self, phone: str) -> list[dict[str, Any]]: ...
    async def drop(self, session_id: str) -> None: ...
    async def logout_from_phone(self, session_id: str) -> None: ...
    async def slow_network(self, ms: int) -> None: ...
    async def aclose(self) -> None: ...


class SimAdapter:
    """The simulator adapter: ``SimDriver`` plus the simulator's control API as the world."""

    name = "sim"

    def __init__(self, url: str) -> None:
        self.url = url
        self.control = SimControl(url)
        self._drivers: list[WhatsAppDriver] = []

    def driver(self, request_timeout: float = 5.0) -> WhatsAppDriver:
        driver = SimDriver(
            self.url,
            connect_timeout=2.0,
            request_timeout=request_timeout,
            reconnect_initial_delay=0.05,
            reconnect_max_delay=0.5,
        )
        self._drivers.append(driver)
        return driver

    def unreachable_driver(self) -> WhatsAppDriver:
        driver = SimDriver(f"http://127.0.0.1:{free_port()}", connect_timeout=1.0)
        self._drivers.append(driver)
        return driver

    def new_phone(self) -> str:
        return new_phone()

    def new_session_id(self) -> str:
        return new_session_id("contract")

    async def scan_qr(self, code: str, phone: str) -> None:
        await self.control.scan(phone, qr=code)

    async def pair(self, code: str) -> None:
        await self.control.pair(code)

    async def contact_says(self, contact: str, to: str, text: str, *, forwarded: bool = False) -> str:
        return str((await self.control.inject(contact, to, text, forwarded=forwarded))["id"])

    async def contact_sends_media(
        self,
        contact: str,
        to: str,
        data: bytes,
        *,
        kind: str,
        mime: str,
        caption: str | None = None,
        file_name: str | None = None,
        ptt: bool = False,
    ) -> str:
        media = {
            "dataBase64": base64.b64encode(data).decode(),
            "kind": kind,
            "mime": mime,
            "fileName": file_name,
            "ptt": ptt,
        }
        return str((await self.control.inject(contact, to, caption, media=media))["id"])

    async def configure_contact(self, phone: str, **flags: bool) -> None:
        unknown = set(flags) - {"auto_reply", "auto_read", "typing"}
        assert not unknown, f"unknown contact flags {unknown}"
        await self.control.contact(
            phone,
            auto_reply=flags.get("auto_reply"),
            auto_read=flags.get("auto_read"),
            typing=flags.get("typing"),
        )

    async def name_contact(self, phone: str, name: str, saved_name: str | None = None) -> None:
        await self.control.contact(phone, name=name, saved_name=saved_name)

    async def contact_reacts(self, contact: str, to: str, message_id: str, emoji: str) -> None:
        await self.control.contact_react(contact, to, message_id, emoji)

    async def contact_edits(self, contact: str, to: str, message_id: str, text: str) -> None:
        await self.control.contact_edit(contact, to, message_id, text)

    async def contact_revokes(self, contact: str, to: str, message_id: str) -> None:
        await self.control.contact_revoke(contact, to, message_id)

    async def contact_presence(self, contact: str, presence: str, to: str | None = None) -> None:
        await self.control.contact_presence(contact, presence, to)

    async def clear_chat_on_phone(self, session_id: str, chat_jid: str) -> None:
        await self.control.clear_chat(session_id, chat_jid)

    async def received_by(self, phone: str) -> list[dict[str, Any]]:
        return await self.control.inbox(phone)

    async def drop(self, session_id: str) -> None:
        await self.control.drop(session_id)

    async def logout_from_phone(self, session_id: str) -> None:
        await self.control.logout(session_id)

    async def slow_network(self, ms: int) -> None:
        await self.control.latency(ms)

    async def aclose(self) -> None:
        for driver in self._drivers:
            await driver.aclose()
        await self.control.aclose()


@pytest.fixture(params=ADAPTERS)
def adapter_name(request: pytest.FixtureRequest) -> str:
    # Adapter resources that are themselves fixtures are resolved here, in sync context.
    if request.param == "sim":
        request.getfixturevalue("simulator_url")
    return str(request.param)


@pytest.fixture
async def driver_factory(adapter_name: str, request: pytest.FixtureRequest) -> AsyncIterator[Adapter]:
    """The adapter under test; every driver it builds is closed after the test."""
    if adapter_name == "sim":
        adapter: Adapter = SimAdapter(request.getfixturevalue("simulator_url"))
    elif adapter_name == "neonize":
        # Runs every contract test that needs no route to WhatsApp; the rest skip with the reason.
        from tests.integration.test_neonize_driver import NeonizeAdapter

        adapter = NeonizeAdapter(str(request.getfixturevalue("tmp_path")))
    else:
        raise ValueError(f"unknown adapter {adapter_name!r}")
    try:
        yield adapter
    finally:
        await adapter.aclose()


@dataclass
class Linked:
    driver: WhatsAppDriver
    rec: Recorder
    sid: str
    phone: str


async def link(factory: Adapter) -> Linked:
    """Connect a new session and link it by scanning its QR."""
    driver, rec, sid, phone = factory.driver(), Recorder(), factory.new_session_id(), factory.new_phone()
    await driver.connect(sid, rec)
    qr = await rec.wait_for(QrCode)
    await factory.scan_qr(qr.code, phone)
    await rec.wait_for(Connected)
    return Linked(driver, rec, sid, phone)


def with_id(msg_id: str) -> Callable[[IncomingMessage], bool]:
    return lambda m: m.id == msg_id


def new_message_id() -> str:
    return "ZS" + uuid.uuid4().hex.upper()


# ---------------------------------------------------------------------- linking


async def test_connect_unlinked_device_emits_qr(driver_factory: Adapter) -> None:
    driver, rec, sid = driver_factory.driver(), Recorder(), driver_factory.new_session_id()
    await driver.connect(sid, rec)
    qr = await rec.wait_for(QrCode)
    assert qr.code
    assert qr.seq > 0
    assert qr.expires_at_ms > time.time() * 1000
    assert rec.session_ids == {sid}


async def test_scanning_the_qr_links_the_device_and_syncs_history(driver_factory: Adapter) -> None:
    driver, rec, sid, phone = (
        driver_factory.driver(),
        Recorder(),
        driver_factory.new_session_id(),
        driver_factory.new_phone(),
    )
    await driver.connect(sid, rec)
    qr = await rec.wait_for(QrCode)
    await driver_factory.scan_qr(qr.code, phone)
    connected = await rec.wait_for(Connected)
    assert connected.phone == phone
    history = await rec.wait_for(HistorySync)
    assert history.is_latest
    assert history.seq > connected.seq
    assert all(isinstance(m, IncomingMessage) for m in history.messages)
    assert all(c_jid.endswith("@s.whatsapp.net") for c_jid, _name in history.contacts)


async def test_pair_code_links_the_device(driver_factory: Adapter) -> None:
    driver, rec, sid, phone = (
        driver_factory.driver(),
        Recorder(),
        driver_factory.new_session_id(),
        driver_factory.new_phone(),
    )
    await driver.connect(sid, rec)
    await rec.wait_for(QrCode)
    code = await driver.pair_code(sid, phone)
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    await driver_factory.pair(code)
    assert (await rec.wait_for(Connected)).phone == phone


# -------------------------------------------------------------------- messaging


async def test_send_to_scripted_contact_gets_receipts_and_a_reply(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact, msg_id = driver_factory.new_phone(), new_message_id()

    result = await a.driver.send_text(a.sid, jid(contact), "hello", message_id=msg_id)

    assert result.message_id == msg_id
    assert result.timestamp > 0
    assert result.duplicate is False
    delivered = await a.rec.wait_for(Receipt, lambda r: msg_id in r.message_ids and r.status == "delivered")
    read = await a.rec.wait_for(Receipt, lambda r: msg_id in r.message_ids and r.status == "read")
    assert delivered.chat_jid == read.chat_jid == jid(contact)
    assert 0 < delivered.seq < read.seq
    reply = await a.rec.wait_for(IncomingMessage, lambda m: m.reply_to_id == msg_id)
    assert reply.chat_jid == reply.sender_jid == jid(contact)
    assert reply.from_me is False
    assert reply.text and "hello" in reply.text
    received = await driver_factory.received_by(contact)
    assert [(m["id"], m["from"], m["text"], m["count"]) for m in received] == [(msg_id, a.phone, "hello", 1)]


async def test_resend_with_same_id_is_duplicate_and_delivered_once(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact, msg_id = driver_factory.new_phone(), new_message_id()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)

    first = await a.driver.send_text(a.sid, jid(contact), "once", message_id=msg_id)
    again = await a.driver.send_text(a.sid, jid(contact), "once", message_id=msg_id)

    assert first.duplicate is False
    assert again.duplicate is True
    assert (again.message_id, again.timestamp) == (first.message_id, first.timestamp)
    received = await driver_factory.received_by(contact)
    assert len(received) == 1
    assert received[0]["id"] == msg_id
    assert received[0]["count"] == 1
    assert received[0]["attempts"] == 2


async def test_send_whose_answer_was_lost_can_be_resent_safely(driver_factory: Adapter) -> None:
    """The crash story: the outcome of a send is unknown, so it is sent again with the same id."""
    a = await link(driver_factory)
    impatient = driver_factory.driver(request_timeout=0.2)
    await a.driver.disconnect(a.sid)
    rec = Recorder()
    await impatient.connect(a.sid, rec)
    await rec.wait_for(Connected)
    contact, msg_id = driver_factory.new_phone(), new_message_id()
    await driver_factory.configure_contact(contact, auto_reply=False)

    await driver_factory.slow_network(400)
    try:
        with pytest.raises(DriverError, match="no answer"):
            await impatient.send_text(a.sid, jid(contact), "maybe", message_id=msg_id)
    finally:
        await driver_factory.slow_network(0)
    await asyncio.sleep(0.4)  # the server did get it, late
    again = await impatient.send_text(a.sid, jid(contact), "maybe", message_id=msg_id)

    assert again.duplicate is True
    [entry] = await driver_factory.received_by(contact)
    assert (entry["id"], entry["count"], entry["attempts"]) == (msg_id, 1, 2)


async def test_concurrent_sends_are_answered_each_with_its_own_result(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    ids = [new_message_id() for _ in range(50)]

    results = await asyncio.gather(
        *(a.driver.send_text(a.sid, jid(contact), f"n{i}", message_id=m) for i, m in enumerate(ids))
    )

    assert [r.message_id for r in results] == ids
    assert {m["id"] for m in await driver_factory.received_by(contact)} == set(ids)


async def test_message_between_accounts_and_read_receipt(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    msg_id = new_message_id()

    await a.driver.send_text(a.sid, jid(b.phone), "ping", message_id=msg_id)

    incoming = await b.rec.wait_for(IncomingMessage, lambda m: m.id == msg_id)
    assert (incoming.chat_jid, incoming.sender_jid, incoming.from_me) == (jid(a.phone), jid(a.phone), False)
    assert incoming.text == "ping"
    await a.rec.wait_for(Receipt, lambda r: msg_id in r.message_ids and r.status == "delivered")

    await b.driver.mark_read(b.sid, incoming.chat_jid, [msg_id])

    read = await a.rec.wait_for(Receipt, lambda r: msg_id in r.message_ids and r.status == "read")
    assert read.chat_jid == jid(b.phone)


async def test_mark_read_of_a_contact_message(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    msg_id = await driver_factory.contact_says(contact, a.phone, "are you there?")
    incoming = await a.rec.wait_for(IncomingMessage, lambda m: m.id == msg_id)
    assert (incoming.chat_jid, incoming.from_me, incoming.text) == (jid(contact), False, "are you there?")

    await a.driver.mark_read(a.sid, incoming.chat_jid, [msg_id])

    [entry] = [m for m in await driver_factory.received_by(a.phone) if m["id"] == msg_id]
    assert entry["read"] is True


async def test_handler_may_call_the_driver(driver_factory: Adapter) -> None:
    """The handler is awaited in order, yet can send and ack without deadlocking the reader."""
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    answered: list[str] = []
    replied = asyncio.Event()

    async def handler(session_id: str, event: DriverEvent) -> None:
        if isinstance(event, IncomingMessage) and not event.from_me:
            result = await a.driver.send_text(
                session_id, event.chat_jid, "got it", message_id=new_message_id(), reply_to_id=event.id
            )
            answered.append(result.message_id)
            await a.driver.ack(session_id, event.seq)
            replied.set()

    driver = driver_factory.driver()
    await a.driver.disconnect(a.sid)
    a.driver = driver
    await driver.connect(a.sid, handler)
    await driver_factory.contact_says(contact, a.phone, "ping")

    await asyncio.wait_for(replied.wait(), 5)
    received = await driver_factory.received_by(contact)
    assert [m["id"] for m in received] == answered


# ---------------------------------------------------------- at-least-once events


async def test_unacked_events_are_redelivered_after_reconnect_and_not_after_ack(
    driver_factory: Adapter,
) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    ids = [await driver_factory.contact_says(contact, a.phone, f"m{i}") for i in range(2)]
    first = [await a.rec.wait_for(IncomingMessage, with_id(i)) for i in ids]

    await a.driver.disconnect(a.sid)
    again = Recorder()
    await a.driver.connect(a.sid, again)
    connected = await again.wait_for(Connected)

    replayed = again.of(IncomingMessage)
    assert [(m.id, m.seq) for m in replayed] == [(m.id, m.seq) for m in first]
    assert all(again.position(m) < again.position(connected) for m in replayed)

    await a.driver.ack(a.sid, connected.seq)
    await a.driver.disconnect(a.sid)
    third = Recorder()
    await a.driver.connect(a.sid, third)
    await third.wait_for(Connected)
    assert [type(e) for e in third.events] == [Connected]


async def test_partial_ack_redelivers_only_the_rest(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    ids = [await driver_factory.contact_says(contact, a.phone, f"m{i}") for i in range(3)]
    got = [await a.rec.wait_for(IncomingMessage, with_id(i)) for i in ids]

    await a.driver.ack(a.sid, got[0].seq)
    await a.driver.disconnect(a.sid)
    again = Recorder()
    await a.driver.connect(a.sid, again)
    await again.wait_for(Connected)

    assert [m.id for m in again.of(IncomingMessage)] == ids[1:]
    assert again.of(HistorySync) == []  # it came before the acked seq


async def test_drop_reports_disconnected_then_reconnects_and_redelivers(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    msg_id = await driver_factory.contact_says(contact, a.phone, "before the drop")
    await a.rec.wait_for(IncomingMessage, lambda m: m.id == msg_id)
    mark = len(a.rec.events)

    await driver_factory.drop(a.sid)

    disconnected = await a.rec.wait_for(Disconnected, since=mark)
    assert disconnected.seq == 0
    reconnected = await a.rec.wait_for(Connected, since=mark)
    replay = await a.rec.wait_for(IncomingMessage, lambda m: m.id == msg_id, since=mark)
    order = [a.rec.position(e) for e in (disconnected, replay, reconnected)]
    assert order == sorted(order)
    result = await a.driver.send_text(a.sid, jid(contact), "after", message_id=new_message_id())
    assert result.duplicate is False


async def test_newest_connection_wins_and_the_old_one_stays_down(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    mark = len(a.rec.events)
    other, other_rec = driver_factory.driver(), Recorder()

    await other.connect(a.sid, other_rec)

    assert (await other_rec.wait_for(Connected)).phone == a.phone
    replaced = await a.rec.wait_for(Disconnected, since=mark)
    assert replaced.reason.startswith("replaced")
    await asyncio.sleep(0.3)  # several reconnect backoffs: the old driver must not fight back
    assert not [e for e in a.rec.events[mark:] if isinstance(e, Connected)]
    with pytest.raises(DriverError):
        await a.driver.send_text(a.sid, jid(a.phone), "x", message_id=new_message_id())
    result = await other.send_text(
        a.sid, jid(driver_factory.new_phone()), "from the new owner", message_id="n1"
    )
    assert result.duplicate is False


# ------------------------------------------------------------------ logging out


async def test_logout_from_the_phone_emits_logged_out(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    mark = len(a.rec.events)

    await driver_factory.logout_from_phone(a.sid)

    logged_out = await a.rec.wait_for(LoggedOut, since=mark)
    assert logged_out.seq > 0
    with pytest.raises(DriverError):
        await a.driver.send_text(a.sid, jid(driver_factory.new_phone()), "x", message_id=new_message_id())
    await asyncio.sleep(0.2)
    assert not [e for e in a.rec.events[mark:] if isinstance(e, Disconnected | Connected)]


async def test_driver_logout_delivers_logged_out_and_unlinks(driver_factory: Adapter) -> None:
    a = await link(driver_factory)

    await a.driver.logout(a.sid)

    assert isinstance(a.rec.events[-1], LoggedOut)
    with pytest.raises(DriverError):
        await a.driver.send_text(a.sid, jid(driver_factory.new_phone()), "x", message_id=new_message_id())
    again = Recorder()
    await a.driver.connect(a.sid, again)
    await again.wait_for(QrCode)  # unlinked: pairing starts over


# ------------------------------------------------------------------------ errors


async def test_calls_on_a_session_that_is_not_connected_raise(driver_factory: Adapter) -> None:
    driver = driver_factory.driver()
    sid, to = driver_factory.new_session_id(), jid(driver_factory.new_phone())
    with pytest.raises(DriverError):
        await driver.send_text(sid, to, "x", message_id=new_message_id())
    with pytest.raises(DriverError):
        await driver.mark_read(sid, to, ["x"])
    with pytest.raises(DriverError):
        await driver.pair_code(sid, driver_factory.new_phone())
    with pytest.raises(DriverError):
        await driver.logout(sid)
    await driver.ack(sid, 1)  # best effort: a lost ack only means a redelivery
    await driver.disconnect(sid)  # idempotent

    rec = Recorder()
    await driver.connect(sid, rec)
    await rec.wait_for(QrCode)
    with pytest.raises(DriverError):  # connected but not linked yet
        await driver.send_text(sid, to, "x", message_id=new_message_id())

    await driver.disconnect(sid)
    with pytest.raises(DriverError):
        await driver.send_text(sid, to, "x", message_id=new_message_id())


async def test_unreachable_server_raises_on_connect(driver_factory: Adapter) -> None:
    driver = driver_factory.unreachable_driver()
    with pytest.raises(DriverError):
        await driver.connect(driver_factory.new_session_id(), Recorder())


async def test_connect_again_is_a_no_op_for_the_same_handler(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    mark = len(a.rec.events)

    await a.driver.connect(a.sid, a.rec)

    with pytest.raises(DriverError):
        await a.driver.connect(a.sid, Recorder())
    result = await a.driver.send_text(
        a.sid, jid(driver_factory.new_phone()), "x", message_id=new_message_id()
    )
    assert result.duplicate is False
    assert not [e for e in a.rec.events[mark:] if isinstance(e, Connected | Disconnected)]

    driver, rec, sid = driver_factory.driver(), Recorder(), driver_factory.new_session_id()
    await asyncio.gather(driver.connect(sid, rec), driver.connect(sid, rec))  # racing first connects
    await rec.wait_for(QrCode)
    await driver.disconnect(sid)
    assert len(rec.of(QrCode)) == 1


async def test_contact_typing_presence(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, typing=True, auto_read=False)
    msg_id = new_message_id()

    await a.driver.send_text(a.sid, jid(contact), "type to me", message_id=msg_id)

    composing = await a.rec.wait_for(PresenceUpdate, lambda p: p.presence == "composing")
    assert composing.jid == composing.chat_jid == jid(contact)
    reply = await a.rec.wait_for(IncomingMessage, lambda m: m.reply_to_id == msg_id)
    assert a.rec.position(composing) < a.rec.position(reply)


# ------------------------------------------------------------ messaging parity

THUMBS_UP = "\N{THUMBS UP SIGN}"


async def test_forwarded_text_arrives_forwarded_with_the_push_name(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    fwd, plain = new_message_id(), new_message_id()

    await a.driver.send_text(a.sid, jid(b.phone), "seen elsewhere", message_id=fwd, forwarded=True)
    await a.driver.send_text(a.sid, jid(contact), "fwd to a contact", message_id=plain, forwarded=True)

    incoming = await b.rec.wait_for(IncomingMessage, with_id(fwd))
    assert (incoming.forwarded, incoming.text) == (True, "seen elsewhere")
    [entry] = await driver_factory.received_by(contact)
    assert entry["forwarded"] is True
    from_contact = await driver_factory.contact_says(contact, a.phone, "fw", forwarded=True)
    assert (await a.rec.wait_for(IncomingMessage, with_id(from_contact))).forwarded is True


async def test_new_contact_sends_contacts_update_and_push_name(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.name_contact(contact, "Zoe", saved_name="Zoe (gym)")

    msg_id = await driver_factory.contact_says(contact, a.phone, "hi, it's Zoe")

    update = await a.rec.wait_for(ContactsUpdate)
    assert update.seq > 0
    assert (jid(contact), "Zoe (gym)", "Zoe") in update.contacts
    message = await a.rec.wait_for(IncomingMessage, with_id(msg_id))
    assert message.push_name == "Zoe"
    assert a.rec.position(update) < a.rec.position(message)
    await driver_factory.contact_says(contact, a.phone, "again")
    await asyncio.sleep(0.1)
    assert len(a.rec.of(ContactsUpdate)) == 1  # once per new contact


async def test_edit_revoke_and_react_between_accounts(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    msg_id = new_message_id()
    await a.driver.send_text(a.sid, jid(b.phone), "helo", message_id=msg_id)
    await b.rec.wait_for(IncomingMessage, with_id(msg_id))

    edited_at = await a.driver.edit_message(a.sid, jid(b.phone), msg_id, "hello")
    edited = await b.rec.wait_for(MessageEdited)
    assert (edited.chat_jid, edited.message_id, edited.text, edited.from_me) == (
        jid(a.phone),
        msg_id,
        "hello",
        False,
    )
    assert edited.timestamp == edited_at and edited.seq > 0

    reacted_at = await b.driver.react(b.sid, jid(a.phone), msg_id, THUMBS_UP)
    reaction = await a.rec.wait_for(Reaction)
    assert (reaction.chat_jid, reaction.message_id, reaction.actor_jid, reaction.emoji, reaction.from_me) == (
        jid(b.phone),
        msg_id,
        jid(b.phone),
        THUMBS_UP,
        False,
    )
    assert reaction.timestamp == reacted_at
    await b.driver.react(b.sid, jid(a.phone), msg_id, "")
    await a.rec.wait_for(Reaction, lambda r: r.emoji == "")

    revoked_at = await a.driver.revoke_message(a.sid, jid(b.phone), msg_id)
    revoked = await b.rec.wait_for(MessageRevoked)
    assert (revoked.chat_jid, revoked.message_id, revoked.from_me, revoked.timestamp) == (
        jid(a.phone),
        msg_id,
        False,
        revoked_at,
    )
    assert await a.driver.revoke_message(a.sid, jid(b.phone), msg_id) == revoked_at  # safe to re-send


async def test_edit_revoke_and_react_on_a_contact_are_recorded(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    kept, gone = new_message_id(), new_message_id()
    await a.driver.send_text(a.sid, jid(contact), "typo", message_id=kept)
    await a.driver.send_text(a.sid, jid(contact), "regret", message_id=gone)
    theirs = await driver_factory.contact_says(contact, a.phone, "nice")

    await a.driver.edit_message(a.sid, jid(contact), kept, "fixed")
    await a.driver.revoke_message(a.sid, jid(contact), gone)
    await a.driver.react(a.sid, jid(contact), theirs, THUMBS_UP)

    entries = {m["id"]: m for m in await driver_factory.received_by(contact)}
    assert (entries[kept]["text"], entries[kept]["edited"]) == ("fixed", True)
    assert entries[gone]["revoked"] is True
    [ours] = [m for m in await driver_factory.received_by(a.phone) if m["id"] == theirs]
    assert ours["reactions"] == {a.phone: THUMBS_UP}


async def test_invalid_edits_are_refused_definitively(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    theirs = await driver_factory.contact_says(contact, a.phone, "not yours")
    mine = new_message_id()
    await a.driver.send_text(a.sid, jid(contact), "mine", message_id=mine)
    await a.driver.revoke_message(a.sid, jid(contact), mine)

    for call in (
        a.driver.edit_message(a.sid, jid(contact), theirs, "x"),  # someone else's message
        a.driver.edit_message(a.sid, jid(contact), new_message_id(), "x"),  # unknown id
        a.driver.edit_message(a.sid, jid(contact), mine, "x"),  # revoked
        a.driver.revoke_message(a.sid, jid(contact), theirs),
        a.driver.react(a.sid, jid(contact), new_message_id(), THUMBS_UP),
    ):
        with pytest.raises(DriverError) as caught:
            await call
        assert not isinstance(caught.value, OutcomeUnknown)


async def test_contact_reacts_edits_and_revokes(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact, ours = driver_factory.new_phone(), new_message_id()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    await a.driver.send_text(a.sid, jid(contact), "rate this", message_id=ours)
    theirs = await driver_factory.contact_says(contact, a.phone, "speling")

    await driver_factory.contact_reacts(contact, a.phone, ours, THUMBS_UP)
    await driver_factory.contact_edits(contact, a.phone, theirs, "spelling")
    await driver_factory.contact_revokes(contact, a.phone, theirs)

    reaction = await a.rec.wait_for(Reaction)
    assert (reaction.message_id, reaction.actor_jid, reaction.emoji, reaction.from_me) == (
        ours,
        jid(contact),
        THUMBS_UP,
        False,
    )
    edited = await a.rec.wait_for(MessageEdited)
    assert (edited.chat_jid, edited.message_id, edited.text, edited.from_me) == (
        jid(contact),
        theirs,
        "spelling",
        False,
    )
    revoked = await a.rec.wait_for(MessageRevoked)
    assert (revoked.chat_jid, revoked.message_id) == (jid(contact), theirs)


async def test_contact_auto_reacts_to_hash_react_after_reading(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact, msg_id = driver_factory.new_phone(), new_message_id()
    await driver_factory.configure_contact(contact, auto_reply=False)

    await a.driver.send_text(a.sid, jid(contact), "thumbs up please #react", message_id=msg_id)

    read = await a.rec.wait_for(Receipt, lambda r: msg_id in r.message_ids and r.status == "read")
    reaction = await a.rec.wait_for(Reaction, lambda r: r.message_id == msg_id)
    assert (reaction.emoji, reaction.actor_jid, reaction.chat_jid) == (THUMBS_UP, jid(contact), jid(contact))
    assert read.seq < reaction.seq


async def test_clear_chat_on_the_phone(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.contact_says(contact, a.phone, "soon gone")

    await driver_factory.clear_chat_on_phone(a.sid, jid(contact))

    cleared = await a.rec.wait_for(ChatCleared)
    assert cleared.chat_jid == jid(contact)
    assert cleared.seq > 0 and cleared.timestamp > 0


async def test_presence_subscription(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    contact = driver_factory.new_phone()

    await a.driver.subscribe_presence(a.sid, jid(contact))
    await a.driver.subscribe_presence(a.sid, jid(b.phone))

    now = await a.rec.wait_for(PresenceUpdate, lambda p: p.jid == jid(contact))
    assert now.presence == "available"
    await a.rec.wait_for(PresenceUpdate, lambda p: p.jid == jid(b.phone) and p.presence == "available")
    mark = len(a.rec.events)
    await b.driver.disconnect(b.sid)
    gone = await a.rec.wait_for(PresenceUpdate, lambda p: p.jid == jid(b.phone), since=mark)
    assert gone.presence == "unavailable" and gone.last_seen
    await driver_factory.contact_presence(contact, "unavailable")
    await a.rec.wait_for(PresenceUpdate, lambda p: p.jid == jid(contact) and p.presence == "unavailable")


async def test_chat_presence_reaches_the_other_account(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    contact = driver_factory.new_phone()

    await a.driver.send_chat_presence(a.sid, jid(b.phone), "composing")
    await a.driver.send_chat_presence(a.sid, jid(contact), "paused")
    await driver_factory.contact_presence(contact, "recording", to=a.phone)

    typing = await b.rec.wait_for(PresenceUpdate)
    assert (typing.chat_jid, typing.jid, typing.presence) == (jid(a.phone), jid(a.phone), "composing")
    recording = await a.rec.wait_for(PresenceUpdate, lambda p: p.presence == "recording")
    assert recording.chat_jid == recording.jid == jid(contact)


async def test_contact_types_then_pauses_before_replying_by_default(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact, msg_id = driver_factory.new_phone(), new_message_id()

    await a.driver.send_text(a.sid, jid(contact), "talk to me", message_id=msg_id)

    reply = await a.rec.wait_for(IncomingMessage, lambda m: m.reply_to_id == msg_id)
    states = [p.presence for p in a.rec.of(PresenceUpdate) if p.jid == jid(contact)]
    assert states == ["composing", "paused"]
    assert all(a.rec.position(p) < a.rec.position(reply) for p in a.rec.of(PresenceUpdate))


async def test_new_events_are_replayed_until_acked_but_presence_is_not(driver_factory: Adapter) -> None:
    a = await link(driver_factory)
    contact, ours = driver_factory.new_phone(), new_message_id()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)
    await a.driver.send_text(a.sid, jid(contact), "x", message_id=ours)
    theirs = await driver_factory.contact_says(contact, a.phone, "y")
    await a.rec.wait_for(IncomingMessage, with_id(theirs))
    connected = a.rec.of(Connected)[-1]
    await a.driver.ack(a.sid, max(e.seq for e in a.rec.events))
    await driver_factory.contact_presence(contact, "composing", to=a.phone)
    await a.rec.wait_for(PresenceUpdate)

    await a.driver.disconnect(a.sid)
    await driver_factory.contact_reacts(contact, a.phone, ours, THUMBS_UP)
    await driver_factory.contact_edits(contact, a.phone, theirs, "y2")
    await driver_factory.contact_revokes(contact, a.phone, theirs)
    await driver_factory.clear_chat_on_phone(a.sid, jid(contact))
    other = driver_factory.new_phone()
    await driver_factory.contact_says(other, a.phone, "new face")
    again = Recorder()
    await a.driver.connect(a.sid, again)
    await again.wait_for(Connected)

    kinds = [type(e) for e in again.events]
    assert kinds == [
        Reaction,
        MessageEdited,
        MessageRevoked,
        ChatCleared,
        ContactsUpdate,
        IncomingMessage,
        Connected,
    ]
    assert all(e.seq > connected.seq for e in again.events)


async def test_new_calls_on_a_session_that_is_not_connected_raise(driver_factory: Adapter) -> None:
    driver = driver_factory.driver()
    sid, to = driver_factory.new_session_id(), jid(driver_factory.new_phone())
    for call in (
        driver.edit_message(sid, to, "x", "y"),
        driver.revoke_message(sid, to, "x"),
        driver.react(sid, to, "x", THUMBS_UP),
        driver.subscribe_presence(sid, to),
        driver.send_chat_presence(sid, to, "composing"),
    ):
        with pytest.raises(DriverError):
            await call


# ------------------------------------------------------------------------ media

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_image_with_caption_arrives_whole_and_once(driver_factory: Adapter, tmp_path: Path) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    data = PNG_HEADER + os.urandom(3 * 1024 * 1024)  # several transfer chunks
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    media = OutgoingMedia(
        path=str(path), kind="image", mime="image/png", size=len(data), caption="look", width=640, height=480
    )
    msg_id = new_message_id()

    result = await a.driver.send_media(a.sid, jid(b.phone), media, message_id=msg_id)

    assert (result.message_id, result.duplicate) == (msg_id, False)
    incoming = await b.rec.wait_for(IncomingMessage, with_id(msg_id))
    assert (incoming.text, incoming.sender_jid, incoming.from_me) == ("look", jid(a.phone), False)
    assert incoming.media is not None
    got = incoming.media
    assert (got.kind, got.mime, got.size, got.width, got.height, got.ptt) == (
        "image",
        "image/png",
        len(data),
        640,
        480,
        False,
    )
    [entry] = [m for m in await driver_factory.received_by(b.phone) if m["id"] == msg_id]
    assert entry["text"] == "look"
    assert (entry["media"]["sha256"], entry["media"]["size"], entry["media"]["kind"]) == (
        sha256(data),
        len(data),
        "image",
    )
    dest = tmp_path / "received.png"
    assert await b.driver.download_media(b.sid, got, str(dest)) == len(data)
    assert dest.read_bytes() == data

    again = await a.driver.send_media(a.sid, jid(b.phone), media, message_id=msg_id)

    assert (again.duplicate, again.timestamp) == (True, result.timestamp)
    [entry] = [m for m in await driver_factory.received_by(b.phone) if m["id"] == msg_id]
    assert (entry["count"], entry["attempts"]) == (1, 2)


async def test_media_from_a_contact_can_be_downloaded(driver_factory: Adapter, tmp_path: Path) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    voice_bytes = b"OggS\x00\x02" + os.urandom(20_000)
    pdf_bytes = b"%PDF-1.4\n" + os.urandom(5_000)

    voice_id = await driver_factory.contact_sends_media(
        contact, a.phone, voice_bytes, kind="audio", mime="audio/ogg; codecs=opus", ptt=True
    )
    pdf_id = await driver_factory.contact_sends_media(
        contact,
        a.phone,
        pdf_bytes,
        kind="document",
        mime="application/pdf",
        caption="the contract",
        file_name="contract.pdf",
    )

    voice = await a.rec.wait_for(IncomingMessage, with_id(voice_id))
    pdf = await a.rec.wait_for(IncomingMessage, with_id(pdf_id))
    assert voice.media is not None and pdf.media is not None
    assert (voice.text, voice.media.kind, voice.media.ptt, voice.media.size) == (
        None,
        "audio",
        True,
        len(voice_bytes),
    )
    assert (pdf.text, pdf.media.kind, pdf.media.mime, pdf.media.file_name) == (
        "the contract",
        "document",
        "application/pdf",
        "contract.pdf",
    )
    for message, data in ((voice, voice_bytes), (pdf, pdf_bytes)):
        assert message.media is not None
        dest = tmp_path / f"{message.id}.bin"
        assert await a.driver.download_media(a.sid, message.media, str(dest)) == len(data)
        assert dest.read_bytes() == data


async def test_unreadable_media_file_is_refused_and_nothing_is_sent(
    driver_factory: Adapter, tmp_path: Path
) -> None:
    a = await link(driver_factory)
    contact = driver_factory.new_phone()
    await driver_factory.configure_contact(contact, auto_reply=False, auto_read=False)

    for path in (tmp_path / "missing.png", tmp_path):  # no such file; a directory
        media = OutgoingMedia(path=str(path), kind="image", mime="image/png", size=10)
        with pytest.raises(DriverError) as caught:
            await a.driver.send_media(a.sid, jid(contact), media, message_id=new_message_id())
        assert not isinstance(caught.value, OutcomeUnknown)

    assert await driver_factory.received_by(contact) == []


async def test_send_media_on_a_session_that_is_not_connected_raises(
    driver_factory: Adapter, tmp_path: Path
) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(PNG_HEADER)
    media = OutgoingMedia(path=str(path), kind="image", mime="image/png", size=len(PNG_HEADER))
    driver = driver_factory.driver()
    with pytest.raises(DriverError):
        await driver.send_media(
            driver_factory.new_session_id(),
            jid(driver_factory.new_phone()),
            media,
            message_id=new_message_id(),
        )


# ------------------------------------------------------------------ sim only


async def test_sim_media_refusals_are_driver_errors(
    simulator_url: str, sim_control: SimControl, tmp_path: Path
) -> None:
    """The simulator's own rules (ptt is for audio) and media it never had (gone after a reset)."""
    adapter = SimAdapter(simulator_url)
    try:
        a = await link(adapter)
        contact = new_phone()
        path = tmp_path / "photo.png"
        path.write_bytes(PNG_HEADER)
        voice_image = OutgoingMedia(path=str(path), kind="image", mime="image/png", size=16, ptt=True)
        with pytest.raises(DriverError, match="audio") as caught:
            await a.driver.send_media(a.sid, jid(contact), voice_image, message_id=new_message_id())
        assert not isinstance(caught.value, OutcomeUnknown)
        assert await sim_control.inbox(contact) == []

        dest = tmp_path / "never.png"
        for handle in ("/v1/media/" + "0" * 32, "not-a-url"):
            unknown = IncomingMedia(kind="image", mime="image/png", handle=handle, size=16)
            with pytest.raises(DriverError):
                await a.driver.download_media(a.sid, unknown, str(dest))
        assert await asyncio.to_thread(os.listdir, tmp_path) == [path.name]  # no partial file left
    finally:
        await adapter.aclose()


async def test_sim_upload_over_the_cap_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "capped.log"
    proc = start_simulator(port, log_path, {"SIM_MAX_MEDIA_BYTES": "1000"})
    adapter = SimAdapter(url)
    try:
        await asyncio.to_thread(wait_ready, url, proc, log_path)
        a = await link(adapter)
        contact = new_phone()
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(2 * 1024 * 1024))
        media = OutgoingMedia(path=str(big), kind="document", mime="application/octet-stream", size=2 << 20)

        with pytest.raises(DriverError) as caught:
            await a.driver.send_media(a.sid, jid(contact), media, message_id=new_message_id())

        assert not isinstance(caught.value, OutcomeUnknown)
        assert await adapter.control.inbox(contact) == []
        assert (await adapter.control.stats())["mediaStored"] == 0
        small = tmp_path / "small.bin"
        small.write_bytes(b"x" * 1000)
        ok = OutgoingMedia(path=str(small), kind="document", mime="text/plain", size=1000)
        assert (
            await a.driver.send_media(a.sid, jid(contact), ok, message_id=new_message_id())
        ).duplicate is False
    finally:
        await adapter.aclose()
        await asyncio.to_thread(stop_simulator, proc)


async def test_sim_driver_survives_a_simulator_restart(tmp_path: Path) -> None:
    """Backoff across refused connections; the restarted (empty) simulator shows a QR again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_simulator(port, tmp_path / "first.log")
    driver = SimDriver(url, connect_timeout=1.0, reconnect_initial_delay=0.05, reconnect_max_delay=0.2)
    try:
        await asyncio.to_thread(wait_ready, url, proc, tmp_path / "first.log")
        rec, sid = Recorder(), new_session_id("restart")
        await driver.connect(sid, rec)
        await rec.wait_for(QrCode)
        mark = len(rec.events)

        await asyncio.to_thread(stop_simulator, proc)
        await rec.wait_for(Disconnected, since=mark)
        await asyncio.sleep(0.5)  # a few refused reconnects
        proc = start_simulator(port, tmp_path / "second.log")
        await rec.wait_for(QrCode, since=mark, timeout=15)
        assert len(rec.of(Disconnected)) == 1  # reported once, not per failed attempt
    finally:
        await driver.aclose()
        await asyncio.to_thread(stop_simulator, proc)


async def test_location_contact_card_and_poll_between_accounts(driver_factory: Adapter) -> None:
    from zapstream_contracts.payloads import ContactCard, Location, Poll

    a, b = await link(driver_factory), await link(driver_factory)
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Soporte\nTEL;type=CELL;waid=51988887777:+51 988 887 777\nEND:VCARD"
    for rich in (Location(latitude=-12.04, longitude=-77.04, name="Tienda", address="Av. Larco 123"),
                 ContactCard(display_name="Soporte", vcard=vcard),
                 Poll(name="¿Horario?", options=["Mañana", "Tarde"])):
        msg_id = new_message_id()
        sent = await a.driver.send_rich(a.sid, jid(b.phone), rich, message_id=msg_id)
        incoming = await b.rec.wait_for(IncomingMessage, with_id(sent.message_id))
        assert incoming.rich == rich and incoming.text is None and incoming.media is None
        if a.driver.supports_client_message_ids:
            again = await a.driver.send_rich(a.sid, jid(b.phone), rich, message_id=msg_id)
            assert again.duplicate


async def test_groups_create_participants_link_list_and_leave(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    other = driver_factory.new_phone()
    info = await a.driver.create_group(a.sid, "Ventas", [jid(b.phone)])
    assert info.id.endswith("@g.us") and info.subject == "Ventas"
    assert {p.id: p.admin for p in info.participants} == {jid(a.phone): "superadmin", jid(b.phone): None}
    assert await a.driver.update_group_participants(a.sid, info.id, "promote", [jid(b.phone)]) == [jid(b.phone)]
    assert await a.driver.update_group_participants(a.sid, info.id, "add", [jid(other)]) == [jid(other)]
    assert await a.driver.update_group_participants(a.sid, info.id, "remove", [jid(other)]) == [jid(other)]
    link_a = await a.driver.group_invite_link(a.sid, info.id)
    assert link_a.startswith("https://chat.whatsapp.com/")
    assert await a.driver.group_invite_link(a.sid, info.id, reset=True) != link_a
    listed = {g.id: g for g in await b.driver.joined_groups(b.sid)}
    assert {p.id: p.admin for p in listed[info.id].participants}[jid(b.phone)] == "admin"
    await b.driver.leave_group(b.sid, info.id)
    assert info.id not in {g.id for g in await b.driver.joined_groups(b.sid)}
    with pytest.raises(DriverError):
        await b.driver.group_invite_link(b.sid, info.id)


async def test_profile_photo_bytes_or_none(driver_factory: Adapter) -> None:
    a, b = await link(driver_factory), await link(driver_factory)
    photo = await a.driver.profile_photo(a.sid, jid(b.phone))
    assert photo is not None and photo.startswith(b"\xff\xd8\xff")
