"""Groups: the pure decisions, the events, and the neonize mapping of real ``GroupInfo`` protobufs (offline)."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.decisions import decide
from zapstream_domain.errors import CommandRejected
from zapstream_domain.session import Session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GROUP = "120363025246125486@g.us"


def _cmd(cls: type[c.Command], sid: str, **kw: object) -> c.Command:
    return cls(command_id=str(uuid.uuid4()), session_id=sid, tenant_id="t", issued_at="x", **kw)


def _session(connected: bool = True) -> Session:
    s, _ = decide(None, _cmd(c.CreateSession, str(uuid.uuid4())), NOW)
    assert s is not None
    if connected:
        s.record_connected(NOW, "51999999999")
    s.collect_events()
    return s


def test_group_commands_need_a_connected_session_and_a_group_jid() -> None:
    s = _session()
    for cmd in (_cmd(c.CreateGroup, str(s.id), subject="Ventas", participants=["51988887777"]),
                _cmd(c.UpdateGroupParticipants, str(s.id), group_jid=GROUP, action="add", participants=["1"]),
                _cmd(c.LeaveGroup, str(s.id), group_jid=GROUP),
                _cmd(c.GetGroupInviteLink, str(s.id), group_jid=GROUP),
                _cmd(c.SyncGroups, str(s.id))):
        assert decide(s, cmd, NOW)[1] == []  # only checks: the runner records the outcome after WhatsApp
        with pytest.raises(CommandRejected) as refused:
            decide(_session(connected=False), cmd.model_copy(update={"session_id": cmd.session_id}), NOW)
        assert refused.value.code in ("not_connected", "not_found")
    with pytest.raises(CommandRejected) as refused:
        decide(s, _cmd(c.LeaveGroup, str(s.id), group_jid="51988887777@s.whatsapp.net"), NOW)
    assert refused.value.code == "not_a_group"
    with pytest.raises(CommandRejected) as refused:
        decide(s, _cmd(c.LeaveGroup, str(s.id), group_jid="not a jid"), NOW)
    assert refused.value.code == "invalid_jid"


def test_group_events_carry_metadata_and_changes() -> None:
    s = _session()
    info = p.GroupInfo(id=GROUP, subject="Ventas", owner="51999999999@s.whatsapp.net", creation=1, size=1,
                       participants=[p.GroupParticipant(id="51999999999@s.whatsapp.net", admin="superadmin")])
    s.record_groups(NOW, [info])
    s.record_group_participants(NOW, GROUP, "add", ["51988887777@s.whatsapp.net"], author="me")
    s.record_group_participants(NOW, GROUP, "remove", [])  # nothing changed: no event
    upsert, change = s.collect_events()
    assert upsert.TYPE == "session.groups.upsert" and upsert.payload.groups == [info]  # type: ignore[attr-defined]
    assert change.TYPE == "session.groups.participants"
    wire = change.payload.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
    assert wire == {"tenantId": "t", "id": GROUP, "action": "add", "participants": ["51988887777@s.whatsapp.net"],
                    "author": "me"}


def test_group_commands_round_trip_on_the_wire() -> None:
    cmd = _cmd(c.UpdateGroupParticipants, "s", group_jid=GROUP, action="promote", participants=["51988887777"])
    assert c.parse_command(cmd.model_dump_json(by_alias=True).encode()) == cmd
    with pytest.raises(ValueError):
        _cmd(c.CreateGroup, "s", subject="x", participants=[])


neonize = pytest.mark.skipif(importlib.util.find_spec("neonize") is None, reason="neonize is not installed")


def _N() -> Any:
    from session_runner.drivers.neonize_worker import import_neonize

    import_neonize()
    from neonize.proto import Neonize_pb2 as N

    return N


def _jid(N: Any, user: str, server: str = "s.whatsapp.net") -> Any:
    return N.JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


@neonize
def test_neonize_group_info_maps_to_metadata() -> None:
    from session_runner.drivers import neonize_mapping as nm

    N = _N()
    info = N.GroupInfo(
        JID=_jid(N, "120363025246125486", "g.us"), OwnerJID=_jid(N, "5511999990000"),
        GroupName=N.GroupName(Name="Ventas Lima"), GroupTopic=N.GroupTopic(Topic="Pedidos"),
        GroupAnnounce=N.GroupAnnounce(IsAnnounce=True), GroupLocked=N.GroupLocked(isLocked=False),
        GroupCreated=1_717_000_000,  # a float32 on the wire: about a minute of precision
        Participants=[
            N.GroupParticipant(JID=_jid(N, "5511999990000"), IsAdmin=True, IsSuperAdmin=True),
            N.GroupParticipant(JID=_jid(N, "5511988887777"), IsAdmin=True),
            N.GroupParticipant(JID=_jid(N, "5511977776666")),
            N.GroupParticipant(JID=_jid(N, "5511966665555"), Error=403),  # privacy: not added
        ])
    mapped = nm.map_group_info(info)
    assert mapped.creation is not None and abs(mapped.creation - 1_717_000_000) < 200
    assert mapped.model_copy(update={"creation": 1}) == p.GroupInfo(
        id=GROUP, subject="Ventas Lima", owner="5511999990000@s.whatsapp.net", creation=1,
        desc="Pedidos", announce=True, restrict=False, size=3,
        participants=[p.GroupParticipant(id="5511999990000@s.whatsapp.net", admin="superadmin"),
                      p.GroupParticipant(id="5511988887777@s.whatsapp.net", admin="admin"),
                      p.GroupParticipant(id="5511977776666@s.whatsapp.net")])
    changed = nm.changed_participants([N.GroupParticipant(JID=_jid(N, "5511977776666")),
                                       N.GroupParticipant(JID=_jid(N, "5511966665555"), Error=409)])
    assert changed == ["5511977776666@s.whatsapp.net"]


def test_the_groups_read_model_applies_participant_changes_idempotently() -> None:
    from projector.groups import changed

    start = [{"id": "me", "admin": "superadmin"}, {"id": "a", "admin": None}]
    added = changed(start, "add", ["b", "a"])
    assert added == [*start, {"id": "b", "admin": None}]
    assert changed(added, "add", ["b"]) == added
    promoted = changed(added, "promote", ["b", "ghost"])
    assert promoted[-1] == {"id": "b", "admin": "admin"} and len(promoted) == 3
    assert changed(changed(promoted, "demote", ["b"]), "remove", ["b"]) == start
    assert changed(start, "leave", ["me"]) == [{"id": "a", "admin": None}]


def test_photo_keys_stay_in_the_session_prefix() -> None:
    s = _session()
    ok = f"tenants/t/sessions/{s.id}/photos/x%40s.whatsapp.net/1.jpg"
    decide(s, _cmd(c.FetchProfilePhoto, str(s.id), jid="x", key=ok), NOW)
    for bad in ("tenants/other/sessions/x/photos/a.jpg", f"tenants/t/sessions/{s.id}/photos/../../x"):
        with pytest.raises(CommandRejected) as refused:
            decide(s, _cmd(c.FetchProfilePhoto, str(s.id), jid="x", key=bad), NOW)
        assert refused.value.code == "media_forbidden"


@neonize
def test_neonize_group_info_event_maps_to_participant_changes() -> None:
    from session_runner.drivers import neonize_mapping as nm
    from session_runner.drivers.port import GroupParticipantsChanged

    N = _N()
    ev = N.GroupInfoEvent(JID=_jid(N, "120363025246125486", "g.us"), Sender=_jid(N, "5511999990000"),
                          Timestamp=1_717_000_000, Join=[_jid(N, "5511988887777")],
                          Promote=[_jid(N, "5511977776666")])
    assert nm.map_group_info_event(ev, 3) == [
        GroupParticipantsChanged(seq=3, group_jid=GROUP, action="add", participants=("5511988887777@s.whatsapp.net",),
                                 author="5511999990000@s.whatsapp.net"),
        GroupParticipantsChanged(seq=3, group_jid=GROUP, action="promote",
                                 participants=("5511977776666@s.whatsapp.net",), author="5511999990000@s.whatsapp.net"),
    ]
