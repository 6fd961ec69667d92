"""Locations, contact cards and polls: the send decision, the wire shape, and the neonize mapping both ways
(with neonize's own protobuf classes, offline)."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.decisions import decide, message_id_for
from zapstream_domain.session import Session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Soporte\nTEL;type=CELL;waid=51988887777:+51 988 887 777\nEND:VCARD"
RICH: list[p.Location | p.ContactCard | p.Poll] = [
    p.Location(latitude=-12.04, longitude=-77.04, name="Tienda", address="Av. Larco 123"),
    p.ContactCard(display_name="Soporte", vcard=VCARD),
    p.Poll(name="¿Horario?", options=["Mañana", "Tarde"], selectable_count=1),
]


def _cmd(cls: type[c.Command], sid: str, **kw: object) -> c.Command:
    return cls(command_id=str(uuid.uuid4()), session_id=sid, tenant_id="t", issued_at="x", **kw)


def _connected() -> Session:
    sid = str(uuid.uuid4())
    s, _ = decide(None, _cmd(c.CreateSession, sid), NOW)
    assert s is not None
    s.record_connected(NOW, "51999999999")
    s.collect_events()
    return s


@pytest.mark.parametrize("rich", RICH, ids=lambda r: r.kind)
def test_a_rich_send_is_an_intent_then_an_upsert_of_its_kind(rich: p.Location | p.ContactCard | p.Poll) -> None:
    s = _connected()
    cmd = _cmd(c.SendMessage, str(s.id), to="51988887777", rich=rich)
    _, events = decide(s, cmd, NOW)
    assert [e.TYPE for e in events] == ["session.messages.send_requested"]
    intent = events[0].payload
    assert isinstance(intent, p.SendRequested) and intent.rich == rich
    assert intent.message_id == message_id_for(cmd.command_id)
    s.record_sent(NOW, intent, 1767220000)
    (upsert,) = s.collect_events()
    item = upsert.payload.messages[0]
    assert item.type == p.RICH_MESSAGE_TYPES[rich.kind] and item.rich == rich and item.text is None
    wire = item.model_dump(mode="json", by_alias=True)
    assert wire["rich"]["kind"] == rich.kind
    # Round trip through the command's wire form (what Kafka carries).
    again = c.SendMessage.model_validate_json(cmd.model_dump_json(by_alias=True))
    assert again.rich == rich


def test_text_items_keep_exactly_the_seed_keys() -> None:
    item = p.MessageSummary(id="1", remote_jid="x@s.whatsapp.net", from_me=True, timestamp=1, text="hola")
    assert "rich" not in item.model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize("bad", [
    lambda: p.Location(latitude=91, longitude=0),
    lambda: p.ContactCard(display_name="x", vcard="no card"),
    lambda: p.Poll(name="q", options=["one"]),
    lambda: p.Poll(name="q", options=["a", "a"]),
    lambda: p.Poll(name="q", options=["a", "b"], selectable_count=3),
    lambda: c.SendMessage(command_id="1", session_id="s", tenant_id="t", issued_at="x", to="1",
                          content="and text", rich=RICH[0]),
])
def test_invalid_rich_content_is_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        bad()


# ----------------------------------------------------------------------------- neonize

neonize = pytest.mark.skipif(importlib.util.find_spec("neonize") is None, reason="neonize is not installed")


def _proto() -> tuple[Any, Any, Any]:
    from session_runner.drivers.neonize_worker import import_neonize

    import_neonize()
    from neonize.proto import Neonize_pb2 as N
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E

    from session_runner.drivers import neonize_mapping as nm

    return N, E, nm


def _event(N: Any, E: Any, body: Any) -> Any:
    jid = N.JID(User="5511988887777", Server="s.whatsapp.net", Device=0, RawAgent=0,
                Integrator=0, IsEmpty=False)
    info = N.MessageInfo(
        MessageSource=N.MessageSource(Chat=jid, Sender=jid, IsFromMe=False, IsGroup=False),
        ID="3EB0RICH", Pushname="Alice", Timestamp=1_717_000_000)
    return N.Message(Message=body, Info=info)


@neonize
def test_neonize_location_contact_and_poll_map_in() -> None:
    from session_runner.drivers.port import IncomingMessage

    N, E, nm = _proto()
    bodies = [
        (E.Message(locationMessage=E.LocationMessage(
            degreesLatitude=-12.04, degreesLongitude=-77.04, name="Tienda", address="Av. Larco 123")), RICH[0]),
        (E.Message(contactMessage=E.ContactMessage(displayName="Soporte", vcard=VCARD)), RICH[1]),
        (E.Message(pollCreationMessageV3=E.PollCreationMessage(
            name="¿Horario?", selectableOptionsCount=1,
            options=[E.PollCreationMessage.Option(optionName=o) for o in ("Mañana", "Tarde")])), RICH[2]),
    ]
    for body, expected in bodies:
        event = nm.map_message(_event(N, E, body), 7)
        assert isinstance(event, IncomingMessage) and event.rich == expected and event.media is None


@neonize
def test_neonize_location_and_contact_map_out_and_back() -> None:
    _, E, nm = _proto()
    for rich in RICH[:2]:
        message = nm.rich_message(rich)
        assert isinstance(message, E.Message)
        assert nm.message_rich(E.Message.FromString(message.SerializeToString())) == rich
    ctx = E.ContextInfo(stanzaID="3EB0QUOTED")
    quoted = nm.rich_message(RICH[0], ctx)
    assert quoted.locationMessage.contextInfo.stanzaID == "3EB0QUOTED"


@neonize
def test_a_poll_with_one_option_from_whatsapp_is_read_as_a_plain_message() -> None:
    _, E, nm = _proto()
    body = E.Message(pollCreationMessage=E.PollCreationMessage(
        name="q", options=[E.PollCreationMessage.Option(optionName="solo")]))
    assert nm.message_rich(body) is None


def test_poll_votes_keep_a_running_tally_by_name_or_by_hash() -> None:
    import hashlib

    s = _connected()
    poll = RICH[2]
    assert isinstance(poll, p.Poll)
    cmd = _cmd(c.SendMessage, str(s.id), to="51988887777", rich=poll)
    _, events = decide(s, cmd, NOW)
    intent = events[0].payload
    assert isinstance(intent, p.SendRequested)
    s.record_sent(NOW, intent, 1767220000)
    s.collect_events()
    pid = intent.message_id

    s.record_poll_vote(NOW, pid, "51988887777@s.whatsapp.net", "a@s.whatsapp.net", 1, options=["Tarde"])
    s.record_poll_vote(NOW, pid, "51988887777@s.whatsapp.net", "b@s.whatsapp.net", 2,
                       option_hashes=[hashlib.sha256(b"Tarde").hexdigest()])
    s.record_poll_vote(NOW, pid, "51988887777@s.whatsapp.net", "b@s.whatsapp.net", 2,
                       option_hashes=[hashlib.sha256(b"Tarde").hexdigest()])  # re-delivered: no event
    s.record_poll_vote(NOW, pid, "51988887777@s.whatsapp.net", "a@s.whatsapp.net", 3, options=[])
    s.record_poll_vote(NOW, "UNKNOWN", "x", "a@s.whatsapp.net", 3, options=["Tarde"])  # never seen: dropped
    votes = [e.payload for e in s.collect_events()]
    assert [[o.votes for o in v.tally] for v in votes] == [[0, 1], [0, 2], [0, 1]]  # type: ignore[attr-defined]
    assert votes[1].selected_options == ["Tarde"]  # type: ignore[attr-defined]


@neonize
def test_neonize_poll_vote_maps_hashes_and_the_poll_key() -> None:
    import hashlib

    N, E, nm = _proto()
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey

    body = E.Message(pollUpdateMessage=E.PollUpdateMessage(
        pollCreationMessageKey=MessageKey(ID="3EB0POLL", fromMe=True), senderTimestampMS=1_717_000_000_123))
    ev = _event(N, E, body)
    assert nm.map_message(ev, 1) is None  # the encrypted vote is not a chat message
    assert nm.poll_update(ev) is not None
    decrypted = E.PollVoteMessage(selectedOptions=[hashlib.sha256(b"Tarde").digest()])
    vote = nm.map_poll_vote(ev, decrypted, 4)
    assert (vote.poll_id, vote.voter_jid, vote.timestamp) == ("3EB0POLL", "5511988887777@s.whatsapp.net",
                                                             1_717_000_000)
    assert vote.option_hashes == (hashlib.sha256(b"Tarde").hexdigest(),)


@neonize
def test_neonize_mentions_map_in_and_out() -> None:
    N, E, nm = _proto()
    ctx = nm.with_mentions(None, ["5511988887777@s.whatsapp.net"])
    body = E.Message(extendedTextMessage=E.ExtendedTextMessage(text="Hola @5511988887777", contextInfo=ctx))
    event = nm.map_message(_event(N, E, body), 2)
    assert event.mentions == ("5511988887777@s.whatsapp.net",) and event.text == "Hola @5511988887777"


def test_mentions_are_normalised_and_only_on_items_that_have_them() -> None:
    s = _connected()
    cmd = _cmd(c.SendMessage, str(s.id), to=GROUP_JID, content="Hola @51988887777",
               mentions=["51988887777", "51988887777@s.whatsapp.net"])
    _, events = decide(s, cmd, NOW)
    intent = events[0].payload
    assert isinstance(intent, p.SendRequested) and intent.mentions == ["51988887777@s.whatsapp.net"]
    s.record_sent(NOW, intent, 1)
    (upsert,) = s.collect_events()
    wire = upsert.payload.messages[0].model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
    assert wire["mentions"] == ["51988887777@s.whatsapp.net"] and wire["remoteJid"] == GROUP_JID


GROUP_JID = "120363025246125486@g.us"
