"""Calls: the setting, the recorded call, the auto-reply intent (once per call), and neonize's CallOffer mapping."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime

import pytest

from session_runner.drivers import port as d
from session_runner.observe import observe
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.decisions import decide
from zapstream_domain.session import Session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CALLER = "51988887777@s.whatsapp.net"


def _connected() -> Session:
    sid = str(uuid.uuid4())
    s, _ = decide(None, c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id="t",
                                        issued_at="x"), NOW)
    assert s is not None
    s.record_connected(NOW, "51999999999")
    s.collect_events()
    return s


def _configure(s: Session, reject: bool, text: str | None = None) -> None:
    decide(s, c.ConfigureCalls(command_id=str(uuid.uuid4()), session_id=str(s.id), tenant_id="t", issued_at="x",
                               reject_calls=reject, reply_text=text), NOW)
    s.collect_events()


def test_a_call_is_an_offer_until_the_setting_rejects_it_and_replies_once() -> None:
    s = _connected()
    assert observe(s, d.IncomingCall(seq=1, call_id="C1", caller_jid=CALLER, timestamp=1), NOW) is None
    (offer,) = s.collect_events()
    assert offer.TYPE == "session.call.received"
    assert offer.payload.model_dump(mode="json", by_alias=True) == {  # type: ignore[attr-defined]
        "tenantId": "t", "id": "C1", "from": CALLER, "timestamp": 1, "isVideo": False, "isGroup": False,
        "status": "offer"}

    _configure(s, True, "Escríbenos")
    action = observe(s, d.IncomingCall(seq=2, call_id="C2", caller_jid=CALLER, timestamp=2), NOW)
    assert action is not None and action.call_id == "C2" and action.caller_jid == CALLER
    assert action.reply is not None and action.reply.text == "Escríbenos" and action.reply.to == CALLER
    types = [e.TYPE for e in s.collect_events()]
    assert types == ["session.call.received", "session.messages.send_requested"]
    # Re-delivered before its acknowledgement: nothing new, no second rejection or reply.
    assert observe(s, d.IncomingCall(seq=2, call_id="C2", caller_jid=CALLER, timestamp=2), NOW) is None
    assert s.collect_events() == []

    _configure(s, True)
    action = observe(s, d.IncomingCall(seq=3, call_id="C3", caller_jid=CALLER, timestamp=3), NOW)
    assert action is not None and action.reply is None
    _configure(s, False, "ignored")
    assert s.call_reply_text is None and not s.reject_calls


def test_settings_event_shape() -> None:
    s = _connected()
    _, events = decide(s, c.ConfigureCalls(command_id="1", session_id=str(s.id), tenant_id="t", issued_at="x",
                                           reject_calls=True, reply_text="hola"), NOW)
    assert events[0].payload == p.SettingsUpdated(tenant_id="t", reject_calls=True, call_reply_text="hola")


@pytest.mark.skipif(importlib.util.find_spec("neonize") is None, reason="neonize is not installed")
def test_neonize_call_offer_maps_to_an_incoming_call() -> None:
    from session_runner.drivers.neonize_worker import import_neonize

    import_neonize()
    from neonize.proto import Neonize_pb2 as N

    from session_runner.drivers import neonize_mapping as nm

    def jid(user: str, device: int = 0) -> N.JID:
        return N.JID(User=user, Server="s.whatsapp.net", Device=device, RawAgent=0, Integrator=0, IsEmpty=False)

    meta = N.BasicCallMeta(timestamp=1_717_000_000, callCreator=jid("51988887777", 3), callID="CALL1")
    getattr(meta, "from").CopyFrom(jid("51988887777", 3))
    event = nm.map_call_offer(N.CallOffer(basicCallMeta=meta), 5)
    assert event == d.IncomingCall(seq=5, call_id="CALL1", caller_jid=CALLER, timestamp=1_717_000_000)


def test_call_settings_and_polls_survive_a_snapshot() -> None:
    import orjson

    from zapstream_domain.snapshots import session_from_snapshot, snapshot_of

    s = _connected()
    _configure(s, True, "Escríbenos")
    s.poll_state()["3EB0POLL"] = {"options": ["a", "b"], "votes": {"x@s.whatsapp.net": ["a"]}}
    again = session_from_snapshot(orjson.loads(orjson.dumps(snapshot_of(s))))
    assert (again.reject_calls, again.call_reply_text) == (True, "Escríbenos")
    assert again.poll_state() == s.poll_state()
    assert not Session.reject_calls  # the class default stays off for snapshots without the setting


@pytest.mark.skipif(importlib.util.find_spec("neonize") is None, reason="neonize is not installed")
def test_neonize_profile_picture_info_gives_an_https_url_or_none() -> None:
    from session_runner.drivers.neonize_worker import import_neonize

    import_neonize()
    from neonize.proto import Neonize_pb2 as N

    from session_runner.drivers import neonize_mapping as nm

    url = "https://pps.whatsapp.net/v/t61.24694-24/123_n.jpg?oh=x&oe=y"
    assert nm.profile_photo_url(N.ProfilePictureInfo(URL=url, ID="1", Type="image")) == url
    assert nm.profile_photo_url(N.ProfilePictureInfo()) is None
    assert nm.profile_photo_url(N.ProfilePictureInfo(URL="http://169.254.169.254/")) is None
