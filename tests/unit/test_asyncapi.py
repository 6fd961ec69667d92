"""schemas/asyncapi.json is valid AsyncAPI 3.0 and describes every topic, key, header and message.

The meta-schema is the official one, vendored from the ``@asyncapi/specs`` npm package 6.11.1
(schemas/3.0.0.json, Apache-2.0) into ``tests/unit/metaschemas/``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from zapstream_contracts import campaign_commands as cc
from zapstream_contracts import commands as c
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope, command_headers, identity_headers
from zapstream_contracts.identity_events import IDENTITY_EVENTS, identity_dataschema
from zapstream_domain.session import Session
from zapstream_platform.schemagen import breaking_changes, generate
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

ROOT = Path(__file__).resolve().parents[2] / "schemas"
META = Path(__file__).resolve().parent / "metaschemas" / "asyncapi-3.0.0.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((ROOT / "asyncapi.json").read_bytes())
    return loaded


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    meta = orjson.loads(META.read_bytes())
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in jsonschema.Draft7Validator(meta).iter_errors(doc)]
    assert errors == []
    assert doc["asyncapi"] == "3.0.0"


def test_a_key_on_the_channel_is_refused_by_the_meta_schema(doc: dict[str, Any]) -> None:
    # The check has teeth: the mistake the document used to make is caught.
    meta = orjson.loads(META.read_bytes())
    broken = orjson.loads(orjson.dumps(doc))
    broken["channels"]["sessionEvents"]["bindings"]["kafka"]["key"] = {"type": "string"}
    assert list(jsonschema.Draft7Validator(meta).iter_errors(broken))


def test_every_topic_is_a_channel_with_keyed_messages(doc: dict[str, Any]) -> None:
    kafka = KafkaSettings()
    topics = Topics.from_settings(kafka)
    addresses = {ch["address"] for ch in doc["channels"].values()}
    assert addresses == {topics.session_commands, topics.session_events, topics.session_commands_dlq,
                         topics.session_snapshots, f"{kafka.topic_prefix}.identity.events",
                         topics.campaign_commands, topics.campaign_events, topics.session_secrets}
    for channel in doc["channels"].values():
        assert "key" not in channel["bindings"]["kafka"]
        assert channel["messages"], channel["address"]
        for ref in channel["messages"].values():
            message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            payload = message["payload"]
            if "$ref" in payload and not payload["$ref"].startswith("#"):
                assert (ROOT / payload["$ref"]).exists(), payload["$ref"]
    assert set(doc["servers"]) == {"dev", "production"}


def test_every_event_command_and_identity_type_has_a_message(doc: dict[str, Any]) -> None:
    names = {m["name"] for m in doc["components"]["messages"].values()}
    files = {p for p in generate() if p.startswith(("events/", "commands/", "identity/", "secrets/"))}
    assert {Path(p).stem for p in files} <= names
    assert {f"{m.TYPE}.v{m.class_version}" for m in IDENTITY_EVENTS} <= names


def _headers_dict(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {k: v.decode() for k, v in headers}


def test_the_headers_we_write_match_the_documented_headers(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    session = Session.create(uuid.uuid4(), "t1", at)
    event = session.collect_events()[0]
    env = Envelope.from_domain(event, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    _validator(schemas["EventHeaders"]).validate(_headers_dict(env.headers("/zapstream/session-runner")))

    command = c.SendMessage(command_id=str(uuid.uuid4()), session_id=str(uuid.uuid4()), tenant_id="t1",
                            issued_at="2026-01-01T00:00:00.000Z", to="51999999999@s.whatsapp.net", content="hi")
    headers = _headers_dict(command_headers(command, "/zapstream/command-api"))
    _validator(schemas["CommandHeaders"]).validate(headers)
    assert headers["ce_id"] == command.command_id and headers["ce_subject"] == command.session_id
    assert headers["ce_dataschema"].endswith("/commands/session.send_message.json")
    assert "traceparent" not in headers  # none given: no empty header

    ident = _headers_dict(identity_headers("user.logged_in", str(uuid.uuid4()), "2026-01-01T00:00:00.000Z", "t1",
                                           identity_dataschema("user.logged_in"), "/zapstream/command-api"))
    _validator(schemas["IdentityHeaders"]).validate(ident)
    with pytest.raises(jsonschema.ValidationError):
        _validator(schemas["DeadLetterHeaders"]).validate(headers)  # a DLQ record always says why

    start = cc.StartCampaign(command_id=str(uuid.uuid4()), campaign_id=str(uuid.uuid4()), tenant_id="t1",
                             issued_at="2026-01-01T00:00:00.000Z")
    campaign = _headers_dict(command_headers(start, "/zapstream/command-api"))
    _validator(schemas["CommandHeaders"]).validate(campaign)
    assert campaign["ce_subject"] == start.campaign_id


def test_published_schemas_tolerate_added_fields() -> None:
    for rel, data in generate().items():
        if rel.startswith(("events/", "commands/", "identity/", "secrets/")):
            assert b'"additionalProperties": false' not in data, rel


def test_adding_an_optional_field_is_not_breaking_but_nested_removal_is() -> None:
    current = orjson.loads(generate()["events/session.messages.upsert.v1.json"])
    grown = orjson.loads(orjson.dumps(current))
    grown["properties"]["payload"]["properties"]["newOptional"] = {"type": "string"}
    grown["$defs"]["MessageSummary"]["properties"]["alsoNew"] = {"type": "integer"}
    assert breaking_changes(current, grown) == []

    shrunk = orjson.loads(orjson.dumps(current))
    del shrunk["$defs"]["MessageSummary"]["properties"]["remoteJid"]
    assert breaking_changes(current, shrunk) == ["field 'messages[].remoteJid' removed or renamed"]

    retyped = orjson.loads(orjson.dumps(current))
    retyped["$defs"]["MessageSummary"]["properties"]["timestamp"] = {"type": "string"}
    assert breaking_changes(current, retyped) == ["field 'messages[].timestamp' changed type"]

    required = orjson.loads(orjson.dumps(current))
    required["$defs"]["MessageSummary"]["required"].append("pushName")
    assert breaking_changes(current, required) == ["new required field 'messages[].pushName'"]


def test_the_secrets_topic_is_documented_with_its_short_retention_and_its_messages(doc: dict[str, Any]) -> None:
    kafka = KafkaSettings()
    channel = doc["channels"]["sessionSecrets"]
    assert channel["address"] == Topics.from_settings(kafka).session_secrets
    config = channel["bindings"]["kafka"]["topicConfiguration"]
    assert config == {"cleanup.policy": ["delete"], "retention.ms": kafka.secret_retention_ms}
    assert 0 < kafka.secret_retention_ms <= 24 * 3600 * 1000  # short, unlike the event log's forever (-1)
    messages = [doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]] for ref in channel["messages"].values()]
    assert {m["payload"]["$ref"] for m in messages} == {"secrets/session.qr.updated.v1.json",
                                                       "secrets/session.command.succeeded.v1.json"}
    assert {m["headers"]["$ref"] for m in messages} == {"#/components/schemas/SecretHeaders"}
    assert {op["channel"]["$ref"] for op in doc["operations"].values()} >= {"#/channels/sessionSecrets"}
    assert secrets.REDACTED_HEADER in doc["components"]["schemas"]["EventHeaders"]["properties"]


def test_the_secret_and_its_redacted_event_carry_the_documented_headers(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    session = Session.create(uuid.uuid4(), "t1", at)
    session.record_qr(at, "2026-01-01T00:01:00.000Z")
    qr_event = session.collect_events()[-1]
    env = Envelope.from_domain(qr_event)
    redacted = _headers_dict(secrets.redacted_headers(env, "/zapstream/session-runner"))
    _validator(schemas["EventHeaders"]).validate(redacted)
    assert redacted["ce_dataschema"].endswith("/events/session.qr.updated.v2.json")
    whole = secrets.with_qr(env, "2@secret")
    secret = _headers_dict(secrets.headers(whole, "/zapstream/session-runner"))
    _validator(schemas["SecretHeaders"]).validate(secret)
    assert secret["ce_dataschema"] == "https://zapstream.dev/schemas/secrets/session.qr.updated.v1.json"
    assert secret["ce_id"] == redacted["ce_id"] and secret["ce_sequence"] == redacted["ce_sequence"]
    assert secrets.REDACTED_HEADER not in secret
    value = orjson.loads(whole.value())
    _validator(orjson.loads((ROOT / "secrets" / "session.qr.updated.v1.json").read_bytes())).validate(value)
    _validator(orjson.loads((ROOT / "events" / "session.qr.updated.v2.json").read_bytes())).validate(
        orjson.loads(env.value()))
