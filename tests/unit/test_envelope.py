"""The Kafka envelope: the client's WebSocket format as value, CloudEvents and trace context as headers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from zapstream_contracts import commands as c
from zapstream_contracts.envelope import Envelope, command_headers
from zapstream_contracts.events import COMMAND_FAILED
from zapstream_domain.decisions import decide
from zapstream_platform.logs import redact
from zapstream_platform.tracing import child_of, is_valid, new_traceparent


def _created() -> Envelope:
    sid = str(uuid.uuid4())
    cmd = c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id="t1", issued_at="x")
    _, events = decide(None, cmd, datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC))
    return Envelope.from_domain(events[0], traceparent=new_traceparent())


def test_value_is_the_clients_websocket_format() -> None:
    env = _created()
    body = orjson.loads(env.value())
    assert list(body) == ["type", "sessionId", "eventId", "occurredOn", "payload"]
    assert body["type"] == "session.created"
    assert body["occurredOn"] == "2026-01-01T00:00:00.123Z"
    assert body["payload"] == {"tenantId": "t1", "id": env.session_id, "status": "created",
                               "createdAt": "2026-01-01T00:00:00.123Z", "name": None}


def test_headers_carry_cloudevents_and_traceparent() -> None:
    env = _created()
    headers = dict(env.headers("/zapstream/session-runner"))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == env.event_id.encode()
    assert headers["ce_type"] == b"session.created"
    assert headers["ce_subject"] == env.session_id.encode()
    assert headers["ce_tenantid"] == b"t1"
    assert headers["ce_sequence"] == b"1"
    assert headers["ce_schemaversion"] == b"1"
    assert headers["ce_dataschema"].endswith(b"/session.created.v1.json")
    assert headers["content-type"] == b"application/json"
    assert is_valid(headers["traceparent"].decode())


def test_round_trip_through_a_record() -> None:
    env = _created()
    back = Envelope.from_record(env.value(), env.headers("/x"))
    assert back == env


def test_child_span_keeps_the_trace() -> None:
    parent = new_traceparent()
    child = child_of(parent)
    assert child.split("-")[1] == parent.split("-")[1]
    assert child.split("-")[2] != parent.split("-")[2]
    assert is_valid(child_of("garbage"))


def test_secrets_are_redacted_from_log_lines() -> None:
    line = redact("GET /ws/sessions?accessToken=zs_live_abc.def Bearer zs_live_xyz postgresql://u:hunter2@h/db")
    assert "abc.def" not in line and "zs_live_xyz" not in line and "hunter2" not in line


def test_the_schema_version_is_a_header_of_its_own() -> None:
    env = Envelope(type=COMMAND_FAILED.type, session_id="s", event_id="e", occurred_on="2026-01-01T00:00:00.000Z",
                   payload={"tenantId": "t"}, version=3)
    headers = dict(env.headers("/x"))
    assert headers["ce_schemaversion"] == str(COMMAND_FAILED.version).encode()
    assert headers["ce_dataschema"].endswith(f".v{COMMAND_FAILED.version}.json".encode())
    cmd = c.StartSession(command_id="c", session_id="s", tenant_id="t", issued_at="2026-01-01T00:00:00.000Z")
    assert dict(command_headers(cmd, "/x"))["ce_schemaversion"] == b"1"
