"""The runner's pieces without servers: handler registry, snapshots, stop reasons, the send pipeline."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from session_runner.drivers import port as d
from session_runner.handlers import HANDLERS
from session_runner.sends import Links, SendOutcome, SendPipeline, Sent, Standing, Unavailable
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.decisions import DECIDERS, decide
from zapstream_domain.errors import CommandRejected
from zapstream_domain.session import Session
from zapstream_domain.snapshots import session_from_snapshot, snapshot_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "tenant-a"


def _cmd(cls: type[c.Command], sid: str, **kw: object) -> c.Command:
    return cls(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=TENANT, issued_at="x", **kw)


def _connected() -> Session:
    s, _ = decide(None, _cmd(c.CreateSession, str(uuid.uuid4())), NOW)
    assert s is not None
    s.record_connected(NOW, "51999999999")
    s.collect_events()
    return s


def test_every_command_type_has_one_handler_and_one_decision() -> None:
    assert set(HANDLERS) == set(c.COMMAND_TYPES)
    assert set(DECIDERS) | {c.CreateSession} == set(c.COMMAND_TYPES)


def test_snapshot_round_trip_keeps_the_whole_state() -> None:
    s = _connected()
    s.record_incoming(NOW, [p.MessageSummary(id="M1", remote_jid="5198@s.whatsapp.net", from_me=False,
                                             timestamp=1, type="conversation", text="hola")])
    decide(s, _cmd(c.SendMessage, s.session_id, to="51988887777", content="hi"), NOW)
    s.record_command_succeeded(NOW, str(uuid.uuid4()), "session.subscribe_presence", {"jid": "x@s.whatsapp.net"})
    s.collect_events()
    back = session_from_snapshot(snapshot_of(s))
    assert back.version == s.version and back.id == s.id
    assert vars(back) == vars(s)
    # A restored session keeps deciding as the original would.
    with pytest.raises(CommandRejected):
        decide(back, _cmd(c.CreateSession, s.session_id), NOW)


def test_stop_keeps_the_reason_and_logout_unlinks() -> None:
    s = _connected()
    _, events = decide(s, _cmd(c.StopSession, s.session_id, reason="maintenance"), NOW)
    assert [(e.TYPE, e.payload.reason) for e in events] == [("session.status.disconnected", "maintenance")]
    assert not s.is_live
    s2 = _connected()
    _, events = decide(s2, _cmd(c.StopSession, s2.session_id, reason="logout"), NOW)
    assert [e.TYPE for e in events] == ["session.status.logged_out"]
    assert s2.status == "logged_out"
    s3 = _connected()
    _, events = decide(s3, _cmd(c.StopSession, s3.session_id), NOW)
    assert events[0].payload.model_dump(by_alias=True) == {
        "tenantId": TENANT, "reason": "stopped", "disconnectedAt": events[0].payload.disconnected_at}


def test_a_reconnecting_session_takes_sends_a_never_linked_one_refuses_them() -> None:
    s = _connected()
    s.record_disconnected(NOW, "owner_lost")
    s.collect_events()
    _, events = decide(s, _cmd(c.SendMessage, s.session_id, to="51988887777", content="held"), NOW)
    assert [e.TYPE for e in events] == ["session.messages.send_requested"]
    fresh, _ = decide(None, _cmd(c.CreateSession, str(uuid.uuid4())), NOW)
    assert fresh is not None
    with pytest.raises(CommandRejected) as info:
        decide(fresh, _cmd(c.SendMessage, fresh.session_id, to="51988887777", content="x"), NOW)
    assert info.value.code == "not_connected"


# ----- send pipeline -------------------------------------------------------------------


class FakeDriver:
    supports_client_message_ids = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def send_text(self, sid: str, to: str, text: str, **kw: Any) -> d.SendResult:
        gate = self.gates.get(text)
        if gate is not None:
            await gate.wait()
        self.sent.append((sid, to, text))
        return d.SendResult(message_id=kw["message_id"], timestamp=1)


def _intent(to: str, text: str, campaign: str | None = None) -> p.SendRequested:
    return p.SendRequested(tenant_id=TENANT, command_id=str(uuid.uuid4()), message_id=uuid.uuid4().hex,
                           to=to, text=text, campaign_id=campaign)


class Harness:
    def __init__(self, hold_s: float = 60.0) -> None:
        self.driver = FakeDriver()
        self.links = Links()
        self.outcomes: asyncio.Queue[SendOutcome] = asyncio.Queue()
        self.standing: Standing = "pending"
        self.pipeline = SendPipeline(driver=self.driver, media=None, links=self.links,  # type: ignore[arg-type]
                                     standing=lambda sid, intent: self.standing,
                                     report=self.outcomes.put_nowait, hold_deadline_s=hold_s)


async def test_sends_wait_for_the_link_then_go_in_order() -> None:
    h = Harness()
    for i in range(3):
        h.pipeline.submit("s1", _intent("a@s.whatsapp.net", f"m{i}"), None)
    await asyncio.sleep(0)
    assert h.driver.sent == []  # held: the link is down
    h.links.up("s1")
    outcomes = [await h.outcomes.get() for _ in range(3)]
    assert all(isinstance(o.result, Sent) for o in outcomes)
    assert [t for _, _, t in h.driver.sent] == ["m0", "m1", "m2"]
    await h.pipeline.close()


async def test_a_slow_chat_does_not_hold_up_another_chat() -> None:
    h = Harness()
    h.links.up("s1")
    h.driver.gates["slow"] = asyncio.Event()
    h.pipeline.submit("s1", _intent("a@s.whatsapp.net", "slow"), None)
    h.pipeline.submit("s1", _intent("a@s.whatsapp.net", "after-slow"), None)
    h.pipeline.submit("s1", _intent("b@s.whatsapp.net", "other-chat"), None)
    first = await h.outcomes.get()
    assert first.intent.text == "other-chat"
    h.driver.gates["slow"].set()
    rest = [await h.outcomes.get() for _ in range(2)]
    assert [o.intent.text for o in rest] == ["slow", "after-slow"]  # order within the chat
    await h.pipeline.close()


async def test_held_send_fails_as_unavailable_after_the_deadline_campaign_sends_keep_waiting() -> None:
    h = Harness(hold_s=0.05)
    h.pipeline.submit("s1", _intent("a@s.whatsapp.net", "plain"), None)
    h.pipeline.submit("s1", _intent("b@s.whatsapp.net", "campaign", campaign="camp-1"), None)
    failed = await h.outcomes.get()
    assert failed.intent.text == "plain" and isinstance(failed.result, Unavailable)
    assert failed.result.code == "session_unavailable"
    assert h.outcomes.empty()
    h.links.up("s1")
    sent = await h.outcomes.get()
    assert sent.intent.text == "campaign" and isinstance(sent.result, Sent)
    await h.pipeline.close()


async def test_a_held_send_of_a_stopped_session_ends_unavailable() -> None:
    h = Harness()
    h.pipeline.submit("s1", _intent("a@s.whatsapp.net", "x"), None)
    await asyncio.sleep(0)
    h.standing = "gone"
    h.links.up("s1")
    out = await h.outcomes.get()
    assert isinstance(out.result, Unavailable)
    assert h.driver.sent == []
    await h.pipeline.close()


# ----- how the API presents a session's status ---------------------------------------------


def test_status_shows_reconnecting_and_unknown() -> None:
    from command_api.sessions.service import present
    from zapstream_platform.tokens import Principal
    from zapstream_platform.topics import partition_for

    who = Principal(tenant_id=TENANT, role="machine")
    sid = str(uuid.uuid4())
    mine = partition_for(sid, 6)
    view = {"id": sid, "status": "connected", "qr": None, "disconnectedReason": None}
    assert present(who, view, {mine}, 6)["status"] == "connected"
    assert present(who, view, set(range(6)) - {mine}, 6)["status"] == "unknown"
    assert present(who, view, None, 6)["status"] == "connected"  # Kafka cannot tell: show what is stored
    lost = view | {"status": "disconnected", "disconnectedReason": "owner_lost"}
    assert present(who, lost, {mine}, 6)["status"] == "reconnecting"
    stopped = view | {"status": "disconnected", "disconnectedReason": "stopped"}
    assert present(who, stopped, set(), 6)["status"] == "disconnected"  # nothing claims an owner
