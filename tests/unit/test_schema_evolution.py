"""Schema evolution: old events are upcast when read; CI refuses breaking changes without a new version."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from zapstream_contracts.envelope import Envelope, dataschema
from zapstream_contracts.events import COMMAND_FAILED
from zapstream_domain.decisions import event_from_wire, evolve
from zapstream_domain.session import Session
from zapstream_platform.schemagen import breaking_changes, compatibility, generate

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _v1_failed_record(code: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    body = {
        "type": "session.command.failed",
        "sessionId": str(uuid.uuid4()),
        "eventId": str(uuid.uuid4()),
        "occurredOn": "2026-01-01T00:00:00.000Z",
        "payload": {"tenantId": "t", "commandId": "c", "commandType": "session.send_message", "code": code,
                    "reason": "r"},
    }
    headers = [("ce_dataschema", dataschema("session.command.failed", 1).encode()), ("ce_sequence", b"0")]
    return orjson.dumps(body), headers


def test_v1_events_are_upcast_when_read() -> None:
    assert COMMAND_FAILED.version == 2
    env = Envelope.from_record(*_v1_failed_record("not_connected"))
    assert env.payload["retryable"] is True
    assert Envelope.from_record(*_v1_failed_record("session_deleted")).payload["retryable"] is False


def test_records_without_a_dataschema_are_v1() -> None:
    value, _ = _v1_failed_record("outcome_unknown")
    assert Envelope.from_record(value, []).payload["retryable"] is True


def test_current_records_are_not_touched() -> None:
    value, _ = _v1_failed_record("x")
    body = orjson.loads(value)
    body["payload"]["retryable"] = True
    headers = [("ce_dataschema", dataschema("session.command.failed", 2).encode())]
    assert Envelope.from_record(orjson.dumps(body), headers).payload["retryable"] is True


def test_upcast_events_rebuild_aggregates() -> None:
    sid = str(uuid.uuid4())
    created = event_from_wire("session.created", sid, 1, Envelope.from_record(*_v1_failed_record("x")).occurred_at(),
                              {"tenantId": "t", "id": sid, "status": "created", "createdAt": "x"})
    session = evolve(None, created)
    env = Envelope.from_record(*_v1_failed_record("send_failed"))
    failed = event_from_wire(env.type, sid, 2, env.occurred_at(), env.payload)
    assert evolve(session, failed).version == 2


def test_every_version_is_kept_and_compatible() -> None:
    assert (SCHEMAS / "events" / "session.command.failed.v1.json").exists()
    assert compatibility(SCHEMAS) == []


def test_breaking_changes_are_named() -> None:
    current = orjson.loads(generate()["events/session.command.failed.v2.json"])
    older = orjson.loads((SCHEMAS / "events" / "session.command.failed.v1.json").read_bytes())
    assert breaking_changes(older, current) == ["new required field 'retryable'"]
    assert breaking_changes(current, current) == []


def test_a_breaking_edit_without_a_version_bump_fails_the_check(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root)
    committed = root / "events" / "session.status.connected.v1.json"
    doc = orjson.loads(committed.read_bytes())
    # As if the code had dropped a field the committed v1 promised.
    doc["properties"]["payload"]["properties"]["legacyField"] = {"type": "string"}
    committed.write_bytes(orjson.dumps(doc))
    problems = compatibility(root)
    assert len(problems) == 1 and "session.status.connected v1 changed incompatibly" in problems[0]
    assert "bump its version to 2" in problems[0]


def test_deleting_an_old_version_fails_the_check(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root)
    (root / "events" / "session.command.failed.v1.json").unlink()
    assert any("v1 is missing" in p for p in compatibility(root))


def test_a_v1_chat_clear_is_upcast_to_rfc3339() -> None:
    body = {"type": "session.messages.delete", "sessionId": str(uuid.uuid4()), "eventId": str(uuid.uuid4()),
            "occurredOn": "2026-01-01T00:00:00.000Z",
            "payload": {"tenantId": "t", "scope": "chat", "chatJid": "51999@s.whatsapp.net", "deletesCount": 0,
                        "deletes": [], "deletedAt": 1767225600}}
    headers = [("ce_dataschema", dataschema("session.messages.delete", 1).encode())]
    env = Envelope.from_record(orjson.dumps(body), headers)
    assert env.payload["deletedAt"] == "2026-01-01T00:00:00.000Z"
    # Item timestamps keep seed 001's epoch seconds; only our own top-level field changed form.
    item = {"messageId": "m", "deletedAt": 1767225600}
    body["payload"] |= {"scope": "message", "deletes": [item], "deletesCount": 1, "deletedAt": None}
    assert Envelope.from_record(orjson.dumps(body), headers).payload["deletes"] == [item]


def test_a_chat_clear_is_recorded_once_in_rfc3339() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    session = Session.create(uuid.uuid4(), "t", at)
    session.record_chat_cleared(at, "51999@s.whatsapp.net", 1767225600)
    session.record_chat_cleared(at, "51999@s.whatsapp.net", 1767225600)
    cleared = [e for e in session.collect_events() if isinstance(e, Session.MessagesDeleted)]
    assert len(cleared) == 1 and cleared[0].payload.deleted_at == "2026-01-01T00:00:00.000Z"
