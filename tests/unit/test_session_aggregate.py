"""The Session aggregate's decisions and evolution, without any I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.decisions import decide, event_from_wire, evolve, message_id_for
from zapstream_domain.errors import CommandRejected, InvalidJid
from zapstream_domain.jids import normalize_jid
from zapstream_domain.session import Session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "tenant-a"


def _cmd(cls: type[c.Command], sid: str, **kw: object) -> c.Command:
    return cls(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=TENANT, issued_at="x", **kw)


def _connected() -> Session:
    sid = str(uuid.uuid4())
    s, _ = decide(None, _cmd(c.CreateSession, sid), NOW)
    assert s is not None
    s.record_qr(NOW, "2026-01-01T00:01:00.000Z")
    s.record_connected(NOW, "51999999999")
    s.collect_events()
    return s


def test_lifecycle_created_qr_connected_disconnected_logged_out() -> None:
    sid = str(uuid.uuid4())
    s, events = decide(None, _cmd(c.CreateSession, sid), NOW)
    assert s is not None and s.status == "created"
    assert [e.TYPE for e in events] == ["session.created"]
    s.record_qr(NOW, "later")
    assert s.status == "qr_pending"
    s.record_connected(NOW, "51999999999")
    assert s.status == "connected" and s.qr_expires_at is None
    s.record_disconnected(NOW, "network")
    assert s.status == "disconnected"
    s.record_connected(NOW, "51999999999")
    s.record_logged_out(NOW, "unlinked from phone")
    assert s.status == "logged_out" and not s.is_live


def test_send_on_logged_out_session_is_rejected_with_reason() -> None:
    s = _connected()
    s.record_logged_out(NOW, "unlinked")
    with pytest.raises(CommandRejected, match="logged-out") as info:
        decide(s, _cmd(c.SendMessage, s.session_id, to="51988887777", content="hi"), NOW)
    assert info.value.code == "logged_out"


def test_send_records_intent_then_upsert_clears_it() -> None:
    s = _connected()
    cmd = _cmd(c.SendMessage, s.session_id, to="+51 988 887 777", content="hi")
    _, events = decide(s, cmd, NOW)
    (intent_event,) = events
    intent = intent_event.payload
    assert isinstance(intent, p.SendRequested)
    assert intent.to == "51988887777@s.whatsapp.net"
    assert intent.message_id == message_id_for(cmd.command_id)
    assert intent.message_id in s.pending_sends
    s.record_sent(NOW, intent, 1767220000)
    assert s.pending_sends == {}
    assert s.status_of(intent.message_id) == "server_ack"


def test_receipts_are_monotonic() -> None:
    s = _connected()
    read = p.StatusUpdate(message_id="m1", status="read", status_at=2)
    late = p.StatusUpdate(message_id="m1", status="delivered", status_at=1)
    s.record_receipts(NOW, [read])
    s.record_receipts(NOW, [late])
    events = s.collect_events()
    assert len(events) == 1
    assert s.status_of("m1") == "read"


def test_redelivered_incoming_message_is_recorded_once() -> None:
    s = _connected()
    m = p.MessageSummary(id="in-1", remote_jid="51988887777@s.whatsapp.net", from_me=False, timestamp=1)
    s.record_incoming(NOW, [m])
    s.record_incoming(NOW, [m])
    assert len(s.collect_events()) == 1


def test_other_tenant_command_is_not_found() -> None:
    s = _connected()
    cmd = c.StopSession(command_id=str(uuid.uuid4()), session_id=s.session_id, tenant_id="other", issued_at="x")
    with pytest.raises(CommandRejected, match="not found"):
        decide(s, cmd, NOW)


def test_rehydration_from_wire_matches_live_state() -> None:
    sid = str(uuid.uuid4())
    s, events = decide(None, _cmd(c.CreateSession, sid), NOW)
    assert s is not None
    s.record_qr(NOW, "later")
    s.record_connected(NOW, "51999999999")
    events += s.collect_events()
    rebuilt: Session | None = None
    for e in events:
        wire = e.payload.model_dump(by_alias=True, mode="json")
        rebuilt = evolve(rebuilt, event_from_wire(e.TYPE, sid, e.originator_version, e.timestamp, wire))
    assert rebuilt is not None
    assert rebuilt.view() == s.view()
    assert rebuilt.version == s.version


@pytest.mark.parametrize(
    ("raw", "jid"),
    [
        ("51999999999", "51999999999@s.whatsapp.net"),
        ("+51 999-999-999", "51999999999@s.whatsapp.net"),
        ("51999999999@c.us", "51999999999@s.whatsapp.net"),
        ("51999999999:12@s.whatsapp.net", "51999999999@s.whatsapp.net"),
        ("120363025@g.us", "120363025@g.us"),
    ],
)
def test_jid_normalization(raw: str, jid: str) -> None:
    assert normalize_jid(raw) == jid


@pytest.mark.parametrize("raw", ["", "abc", "123", "5199@example.com", "+0123456789"])
def test_invalid_jids_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidJid):
        normalize_jid(raw)


def test_the_same_send_command_twice_sends_once_even_when_whatsapp_kept_another_id() -> None:
    s = _connected()
    cmd = _cmd(c.SendMessage, s.session_id, to="51988887777", content="hi")
    _, events = decide(s, cmd, NOW)
    assert len(events) == 1
    assert decide(s, cmd, NOW)[1] == []  # still pending: a copy of the command is dropped
    s.record_sent(NOW, events[0].payload, 1767220000, wa_message_id="WA-CHOSEN-ID")  # type: ignore[arg-type]
    s.collect_events()
    assert decide(s, cmd, NOW)[1] == []  # settled under another id: still dropped


def test_media_sends_are_checked_against_the_tenant_and_whatsapps_rules() -> None:
    s = _connected()

    def media(**kw: object) -> p.MediaRef:
        base: dict[str, object] = {"kind": "image", "key": f"tenants/{TENANT}/uploads/u/p.png", "mime": "image/png",
                                   "size": 10}
        return p.MediaRef.model_validate(base | kw)

    for ref, caption, code in [
        (media(key="tenants/other/uploads/u/p.png"), None, "media_forbidden"),
        (media(key=f"tenants/{TENANT}/../other/p.png"), None, "media_forbidden"),
        (media(ptt=True), None, "invalid_media"),
        (media(kind="audio", mime="audio/ogg"), "a caption", "invalid_media"),
    ]:
        with pytest.raises(CommandRejected) as rejected:
            decide(s, _cmd(c.SendMessage, s.session_id, to="51988887777", content=caption, media=ref), NOW)
        assert rejected.value.code == code
    _, events = decide(s, _cmd(c.SendMessage, s.session_id, to="51988887777", media=media()), NOW)
    intent = events[0].payload
    assert isinstance(intent, p.SendRequested) and intent.media is not None and intent.text == ""
    s.record_sent(NOW, intent, 1)
    upsert = s.collect_events()[-1].payload
    assert isinstance(upsert, p.MessagesUpsert) and upsert.messages[0].type == "imageMessage"
    with pytest.raises(ValueError):
        c.SendMessage(command_id=str(uuid.uuid4()), session_id=s.session_id, tenant_id=TENANT, issued_at="x",
                      to="51988887777")  # neither content nor media


def test_a_plain_delete_records_no_purge_and_keeps_the_wire_payload_unchanged() -> None:
    s = _connected()
    _, events = decide(s, _cmd(c.DeleteSession, s.session_id), NOW)
    assert [e.TYPE for e in events] == ["session.deleted"]
    deleted = events[0]
    assert isinstance(deleted, Session.Deleted)
    assert deleted.payload.purged is None
    assert set(deleted.payload.model_dump(by_alias=True, mode="json")) == {"tenantId", "deletedAt"}
    assert s.status == "deleted" and not s.purged and s.phone == "51999999999"
    with pytest.raises(CommandRejected) as info:
        decide(s, _cmd(c.DeleteSession, s.session_id), NOW)
    assert info.value.code == "session_deleted"


def test_a_purging_delete_records_purged_and_forgets_the_personal_state() -> None:
    s = _connected()
    s.record_contact_names(NOW, [p.Contact(id="51988887777@s.whatsapp.net", name="Ana")])
    s.collect_events()
    _, events = decide(s, _cmd(c.DeleteSession, s.session_id, purge=True), NOW)
    assert [e.TYPE for e in events] == ["session.deleted"]
    deleted = events[0]
    assert isinstance(deleted, Session.Deleted)
    assert deleted.payload.model_dump(by_alias=True, mode="json")["purged"] is True
    assert s.status == "deleted" and s.purged and s.phone is None and not s.contact_names and not s.is_live
    # Replaying the stored event gives the same state.
    wire = deleted.payload.model_dump(by_alias=True, mode="json")
    rebuilt = _connected()
    evolve(rebuilt, event_from_wire("session.deleted", rebuilt.session_id, rebuilt.version + 1, NOW, wire))
    assert rebuilt.purged and rebuilt.status == "deleted" and rebuilt.phone is None
    # Purged for good: a second purge, or any other command, is rejected.
    for again in (_cmd(c.DeleteSession, s.session_id, purge=True), _cmd(c.DeleteSession, s.session_id),
                  _cmd(c.StartSession, s.session_id)):
        with pytest.raises(CommandRejected) as info:
            decide(s, again, NOW)
        assert info.value.code == "session_deleted"


def test_a_session_deleted_without_purge_can_still_be_purged_once() -> None:
    """Deleting a tenant purges its sessions, also those its users had deleted before."""
    s = _connected()
    decide(s, _cmd(c.DeleteSession, s.session_id), NOW)
    _, events = decide(s, _cmd(c.DeleteSession, s.session_id, purge=True), NOW)
    assert [e.TYPE for e in events] == ["session.deleted"]
    assert s.purged and s.status == "deleted"
    with pytest.raises(CommandRejected):
        decide(s, _cmd(c.DeleteSession, s.session_id, purge=True), NOW)
