"""QR and pairing codes stay off the event log: v2 events without them, upcasters, and their whole copies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from session_runner.handlers import HANDLERS, Context, Effects
from session_runner.partition import _QR, _with_secret
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope, dataschema
from zapstream_contracts.events import COMMAND_SUCCEEDED, QR_UPDATED
from zapstream_domain.decisions import decide
from zapstream_domain.session import Session
from zapstream_domain.snapshots import session_from_snapshot, snapshot_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "tenant-a"


def _record(type_: str, payload: dict[str, Any], version: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    body = {"type": type_, "sessionId": str(uuid.uuid4()), "eventId": str(uuid.uuid4()),
            "occurredOn": "2026-01-01T00:00:00.000Z", "payload": payload}
    return orjson.dumps(body), [("ce_dataschema", dataschema(type_, version).encode()), ("ce_sequence", b"3")]


def test_v1_qr_events_lose_their_code_when_read() -> None:
    assert QR_UPDATED.version == 2
    v1 = {"tenantId": "t", "qr": "2@secret,abc", "expiresAt": "2026-01-01T00:01:00.000Z"}
    env = Envelope.from_record(*_record("session.qr.updated", v1, 1))
    assert env.payload == {"tenantId": "t", "expiresAt": "2026-01-01T00:01:00.000Z"}
    assert env.data(p.QrUpdated).expires_at == "2026-01-01T00:01:00.000Z"
    # Records written before versioning (no ce_dataschema) are v1 too.
    value, _ = _record("session.qr.updated", v1, 1)
    assert "qr" not in Envelope.from_record(value, []).payload


def test_v1_pairing_successes_lose_their_code_other_results_are_kept() -> None:
    assert COMMAND_SUCCEEDED.version == 2
    pairing = {"tenantId": "t", "commandId": "c1", "commandType": "session.request_pair_code",
               "result": {"code": "ABCD-EFGH", "phone": "51955555555"}}
    env = Envelope.from_record(*_record("session.command.succeeded", pairing, 1))
    assert env.payload["result"] == {"phone": "51955555555"}
    assert env.data(p.CommandSucceeded).result == {"phone": "51955555555"}
    # A group's invite "code" is no login secret: only pairing codes are stripped.
    invite = {"tenantId": "t", "commandId": "c2", "commandType": "session.group.invite_link",
              "result": {"code": "Kx1", "link": "https://chat.whatsapp.com/Kx1"}}
    assert Envelope.from_record(*_record("session.command.succeeded", invite, 1)).payload == invite
    sent = {"tenantId": "t", "commandId": "c3", "commandType": "session.send_message", "result": {"messageId": "M"}}
    assert Envelope.from_record(*_record("session.command.succeeded", sent, 1)).payload == sent
    # v2 records are read as written.
    v2 = pairing | {"result": {"phone": "51955555555"}}
    assert Envelope.from_record(*_record("session.command.succeeded", v2, 2)).payload == v2


def _qr_event() -> tuple[Session, Session.Event]:
    session, _ = decide(None, c.CreateSession(command_id=str(uuid.uuid4()), session_id=str(uuid.uuid4()),
                                              tenant_id=TENANT, issued_at="x"), NOW)
    assert session is not None
    session.collect_events()
    assert session.record_qr(NOW, "2026-01-01T00:01:00.000Z")
    [event] = session.collect_events()
    return session, event


def test_the_aggregate_never_holds_the_code_and_snapshots_cannot_carry_it() -> None:
    session, event = _qr_event()
    assert isinstance(event, Session.QrUpdated)
    assert event.payload.model_dump(by_alias=True) == {"tenantId": TENANT, "expiresAt": "2026-01-01T00:01:00.000Z"}
    assert session.status == "qr_pending" and session.view().qr is None
    assert "qr" not in vars(session_from_snapshot(snapshot_of(session)))


def test_the_whole_copy_is_what_clients_always_received() -> None:
    _, event = _qr_event()
    env = Envelope.from_domain(event)
    whole = _with_secret(env, event, {_QR: "2@secret,abc"})
    assert whole is not None
    # Byte for byte seed 001's frame: same envelope, the payload's keys in the order they always had.
    assert whole.value() == orjson.dumps({
        "type": "session.qr.updated", "sessionId": env.session_id, "eventId": env.event_id,
        "occurredOn": env.occurred_on,
        "payload": {"tenantId": TENANT, "qr": "2@secret,abc", "expiresAt": "2026-01-01T00:01:00.000Z"}})
    assert b"2@secret" not in env.value()
    hdr = dict(secrets.headers(whole, "/zapstream/session-runner"))
    assert hdr["ce_dataschema"] == b"https://zapstream.dev/schemas/secrets/session.qr.updated.v1.json"
    assert hdr["ce_sequence"] == str(event.originator_version).encode()
    assert dict(secrets.redacted_headers(env, "/zapstream/session-runner"))[secrets.REDACTED_HEADER] == b"true"
    # Read back from the secrets topic, the code stays (no session-event upcast there).
    back = secrets.from_record(whole.value(), secrets.headers(whole, "x"))
    assert back.version == event.originator_version and back.schema_version == 1
    qr = secrets.qr_of(back)
    assert qr is not None and qr.qr == "2@secret,abc"
    assert secrets.pair_code_of(back) is None
    # Other events, or no QR found with them, have no secret copy.
    assert _with_secret(env, event, {"some-command": "x"}) is None


class _Driver:
    async def pair_code(self, session_id: str, phone: str) -> str:
        return "ABCD-EFGH"


async def test_a_pairing_code_goes_to_the_secret_copy_only() -> None:
    session, _ = _qr_event()
    command = c.RequestPairCode(command_id=str(uuid.uuid4()), session_id=session.session_id, tenant_id=TENANT,
                                issued_at="x", phone="51955555555")
    ctx = Context(command=command, session=session, at=NOW, driver=_Driver(), effects=Effects(),  # type: ignore[arg-type]
                  trace=None)
    await HANDLERS[c.RequestPairCode](ctx)
    assert ctx.secret == "ABCD-EFGH"
    [event] = [e for e in session.collect_events() if isinstance(e, Session.CommandSucceeded)]
    env = Envelope.from_domain(event)
    assert orjson.loads(env.value())["payload"]["result"] == {"phone": "51955555555"}
    whole = _with_secret(env, event, {command.command_id: "ABCD-EFGH"})
    assert whole is not None
    # As clients received it before: result {"code", "phone"}, in that order.
    assert orjson.loads(whole.value())["payload"] == {
        "tenantId": TENANT, "commandId": command.command_id, "commandType": "session.request_pair_code",
        "result": {"code": "ABCD-EFGH", "phone": "51955555555"}}
    assert list(orjson.loads(whole.value())["payload"]["result"]) == ["code", "phone"]
    outcome = secrets.pair_code_of(secrets.from_record(whole.value(), secrets.headers(whole, "x")))
    assert outcome is not None and outcome.result["code"] == "ABCD-EFGH"


def test_only_pairing_successes_take_a_code() -> None:
    session, _ = _qr_event()
    session.record_command_succeeded(NOW, "c1", "session.send_message", {"messageId": "M"})
    [event] = session.collect_events()
    env = Envelope.from_domain(event)
    assert _with_secret(env, event, {"c1": "x"}) is None
    with pytest.raises(ValueError):
        secrets.with_pair_code(env, "x")


def test_a_snapshot_taken_before_the_code_left_the_aggregate_does_not_carry_it_on() -> None:
    session, _ = _qr_event()
    old = snapshot_of(session)
    old["state"]["qr"] = "2@old-secret"  # what snapshots held when the aggregate kept the code
    restored = session_from_snapshot(old)
    assert "qr" not in vars(restored)
    assert b"old-secret" not in orjson.dumps(snapshot_of(restored))
