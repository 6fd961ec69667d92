"""Generate ``schemas/`` from the code: JSON Schema per command and event, an AsyncAPI 3 document for the
topics, and the command API's OpenAPI 3.1 document (``openapi.json``).

``python -m zapstream_platform.schemagen`` rewrites the files; the test suite
fails when the checked-in files differ from what the code generates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from zapstream_contracts.campaign_commands import CAMPAIGN_COMMAND_TYPES
from zapstream_contracts.commands import COMMAND_TYPES
from zapstream_contracts.envelope import command_dataschema
from zapstream_contracts.events import CAMPAIGN_EVENTS, SESSION_EVENTS, SESSION_SNAPSHOT, SUPPRESSION_ADDED
from zapstream_contracts.identity_events import IDENTITY_EVENTS, IdentityPayload, identity_dataschema
from zapstream_contracts.secrets import REDACTED_HEADER, SECRET_EVENTS, secret_dataschema

from .settings import KafkaSettings
from .topics import Topics

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://zapstream.dev/schemas"


def _open(schema: Any) -> Any:
    """Drop ``additionalProperties: false`` everywhere: a reader must tolerate fields added later."""
    if isinstance(schema, dict):
        return {k: _open(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [_open(v) for v in schema]
    return schema


def _envelope_schema(type_: str, payload: dict[str, Any], version: int = 1,
                     subject: str = "sessionId", folder: str = "events") -> dict[str, Any]:
    defs = payload.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}/{folder}/{type_}.v{version}.json",
        "title": type_,
        "type": "object",
        "required": ["type", subject, "eventId", "occurredOn", "payload"],
        "properties": {
            "type": {"const": type_},
            subject: {"type": "string"},
            "eventId": {"type": "string", "format": "uuid"},
            "occurredOn": {"type": "string", "format": "date-time"},
            "payload": payload,
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _identity_schema(model: type[IdentityPayload]) -> dict[str, Any]:
    payload = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs = payload.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": identity_dataschema(model.TYPE, model.class_version),
        "title": model.TYPE,
        "type": "object",
        "required": ["type", "eventId", "occurredOn", "tenantId", "payload"],
        "properties": {
            "type": {"const": model.TYPE},
            "eventId": {"type": "string", "format": "uuid"},
            "occurredOn": {"type": "string", "format": "date-time"},
            "tenantId": {"type": "string"},
            "payload": payload,
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


def generate() -> dict[str, bytes]:
    """Return ``{relative path: file bytes}`` for everything under ``schemas/``."""
    files: dict[str, dict[str, Any]] = {}
    for ev in (*SESSION_EVENTS.values(), SESSION_SNAPSHOT):
        payload = ev.payload.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        files[f"events/{ev.type}.v{ev.version}.json"] = _envelope_schema(ev.type, payload, ev.version)
    for sev in SECRET_EVENTS.values():
        payload = sev.payload.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        doc = _envelope_schema(sev.type, payload, sev.version, folder="secrets")
        doc["description"] = sev.description
        assert doc["$id"] == secret_dataschema(sev.type, sev.version)
        files[f"secrets/{sev.type}.v{sev.version}.json"] = doc
    for cmd in COMMAND_TYPES:
        schema = cmd.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        schema = {"$schema": DIALECT, "$id": command_dataschema(cmd.TYPE), **schema}
        files[f"commands/{cmd.TYPE}.json"] = schema
    for cev in (*CAMPAIGN_EVENTS.values(), SUPPRESSION_ADDED):
        payload = cev.payload.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        files[f"events/{cev.type}.v{cev.version}.json"] = _envelope_schema(cev.type, payload, cev.version,
                                                                           subject="campaignId")
    for ccmd in CAMPAIGN_COMMAND_TYPES:
        schema = ccmd.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        files[f"commands/{ccmd.TYPE}.json"] = {"$schema": DIALECT, "$id": command_dataschema(ccmd.TYPE), **schema}
    for ident in IDENTITY_EVENTS:
        files[f"identity/{ident.TYPE}.v{ident.class_version}.json"] = _identity_schema(ident)
    files = {path: _open(doc) for path, doc in files.items()}

    def under(prefix: str) -> list[str]:
        return sorted(k for k in files if k.startswith(prefix))

    files["asyncapi.json"] = _asyncapi(under("events/session."), under("commands/session."), under("identity/"),
                                       under("events/campaign."), under("commands/campaign."), under("secrets/"))
    files["openapi.json"] = openapi()
    return {path: orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
            for path, doc in files.items()}


def openapi() -> dict[str, Any]:
    """The command API's OpenAPI document, as ``GET /openapi.json`` serves it (built without any server)."""
    # Imported here: the platform library does not depend on the service, only this generator does.
    from command_api.app import build_app
    from command_api.settings import Settings

    doc: dict[str, Any] = build_app(Settings(dev_mode=True)).openapi()
    return doc


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


TRACEPARENT = _string("W3C trace context of the request that caused the record (absent when none was traced).",
                      pattern="^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_CE = {
    "ce_specversion": {"type": "string", "const": "1.0", "description": "CloudEvents spec version."},
    "ce_id": _string("Unique id of the record (eventId or commandId): consumers de-duplicate on it."),
    "ce_source": _string("The producing service, e.g. /zapstream/session-runner."),
    "ce_type": _string("The record's type: the same string as the value's `type` key."),
    "ce_time": _string("When it happened: RFC 3339 UTC with milliseconds.", format="date-time"),
    "ce_dataschema": _string("URI of the JSON Schema of the value, ending in .vN.json for event versions "
                             "(records written before versioning lack it: read them as v1).", format="uri"),
    "ce_schemaversion": _string("The value's schema version (the N of ce_dataschema's .vN.json; 1 for commands), "
                                "as its own header so a consumer can switch on it without parsing the URI. "
                                "Records written before it existed lack it: use ce_dataschema, else 1.",
                                pattern="^[1-9][0-9]*$"),
    "ce_subject": _string("What the record is about: the sessionId (campaignId on campaign topics)."),
    "ce_tenantid": _string("The tenant the record belongs to (CloudEvents extension attribute)."),
    "content-type": {"type": "string", "const": "application/json"},
    "traceparent": TRACEPARENT,
}


def _headers(title: str, required: list[str], extra: dict[str, Any] | None = None,
             names: list[str] | None = None) -> dict[str, Any]:
    props = {k: v for k, v in _CE.items() if names is None or k in names}
    return {"type": "object", "title": title, "required": required, "properties": {**props, **(extra or {})},
            "description": "Kafka record headers; every value is a UTF-8 string."}


def header_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the record headers of each topic (also under ``components.schemas`` of asyncapi.json)."""
    ce_required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]
    origin = {
        "zs_reason": _string("Why the record was dead-lettered (the last error)."),
        "zs_origin_topic": _string("The topic the record was read from."),
        "zs_origin_partition": _string("Its partition number.", pattern="^[0-9]+$"),
        "zs_origin_offset": _string("Its offset.", pattern="^[0-9]+$"),
        "zs_failed_at": _string("When it was dead-lettered: RFC 3339 UTC with milliseconds.", format="date-time"),
    }
    return {
        "EventHeaders": _headers("Session event headers",
                                 [*ce_required, "ce_subject", "ce_tenantid", "ce_sequence"],
                                 {"ce_sequence": _string("Aggregate version of the session after this event: "
                                                         "1, 2, 3, … with no gaps per session.",
                                                         pattern="^[0-9]+$"),
                                  REDACTED_HEADER: {"type": "string", "const": "true", "description":
                                                    "Set when a secret (QR or pairing code) was left out of this "
                                                    "record: its whole copy, same eventId, is on the secrets "
                                                    "topic for a short while."}}),
        "SecretHeaders": _headers("Secrets topic headers: those of the session event it is the whole copy of "
                                  "(ce_id, ce_sequence, …), with ce_dataschema under schemas/secrets/",
                                  [*ce_required, "ce_subject", "ce_tenantid", "ce_sequence", "ce_dataschema"],
                                  {"ce_sequence": _string("The session event's ce_sequence.",
                                                          pattern="^[0-9]+$")}),
        "CommandHeaders": _headers(
            "Session command headers", [*ce_required, "ce_subject", "ce_tenantid", "ce_dataschema"],
            {"zs_redriven_from": _string("Set when an operator re-drove the command from the dead-letter topic: "
                                         "<dlq topic>:<partition>:<offset>.")}),
        "IdentityHeaders": _headers("Identity event headers", [*ce_required, "ce_tenantid"],
                                    names=[k for k in _CE if k != "ce_subject"]),
        "CampaignEventHeaders": _headers(
            "Campaign event headers", [*ce_required, "ce_subject", "ce_tenantid", "ce_sequence", "ce_dataschema"],
            {"ce_sequence": _string("Aggregate version of the campaign after this event (0 for a tenant's "
                                    "campaign.suppression.added, which belongs to no campaign).",
                                    pattern="^[0-9]+$")}),
        "DeadLetterHeaders": _headers(
            "Dead-letter headers: the original command's headers (when it had them) plus zs_*", ["zs_reason"],
            {**origin, "zs_redriven_from": _string("See CommandHeaders.")}),
    }


SNAPSHOT_SCHEMAS: dict[str, dict[str, Any]] = {
    "SessionSnapshot": {
        "type": "object", "title": "Session snapshot (runner-internal)",
        "description": "The Session aggregate's state at a version, so a new owner need not replay everything. "
                       "Internal to the session runner: its `state` may change shape with `v`, and holds "
                       "personal data, so it is written encrypted with the tenant's key: "
                       "{\"sealed\": \"zsenc:1:<tenantId>:…\"} (see docs/events.md).",
        "required": ["v", "id", "version", "state"],
        "properties": {"v": {"type": "integer"}, "id": {"type": "string", "format": "uuid"},
                       "version": {"type": "integer", "minimum": 1}, "state": {"type": "object"}},
    },
    "Checkpoint": {
        "type": "object", "title": "Checkpoint (runner-internal)",
        "description": "Offset of the event topic's partition from which the snapshots are not complete.",
        "required": ["eventsFrom"], "properties": {"eventsFrom": {"type": "integer", "minimum": 0}},
    },
}


def _asyncapi(events: list[str], commands: list[str], identity: list[str], campaign_events: list[str],
              campaign_commands: list[str], secret_events: list[str]) -> dict[str, Any]:
    kafka = KafkaSettings()
    topics = Topics.from_settings(kafka)

    def name(path: str) -> str:
        return Path(path).stem.replace(".", "_")

    def key(description: str) -> dict[str, Any]:
        return {"kafka": {"key": {"type": "string", "description": description}, "bindingVersion": "0.5.0"}}

    messages: dict[str, Any] = {}

    def add(paths: list[str], prefix: str, headers: str, key_of: str, summary: str) -> dict[str, Any]:
        refs = {}
        for path in paths:
            mid = f"{prefix}_{name(path)}"
            messages[mid] = {"name": Path(path).stem, "title": Path(path).stem, "summary": summary,
                             "contentType": "application/json",
                             "headers": {"$ref": f"#/components/schemas/{headers}"},
                             "payload": {"$ref": path}, "bindings": key(key_of)}
            refs[mid] = {"$ref": f"#/components/messages/{mid}"}
        return refs

    ev_refs = add(events, "event", "EventHeaders", "sessionId", "A session event (ce_type = type).")
    cmd_refs = add(commands, "command", "CommandHeaders", "sessionId", "A command for a session.")
    id_refs = add(identity, "identity", "IdentityHeaders", "tenantId", "An identity event of a tenant.")
    cev_refs = add(campaign_events, "event", "CampaignEventHeaders",
                   "campaignId (tenantId for campaign.suppression.added)", "A campaign event (ce_type = type).")
    ccmd_refs = add(campaign_commands, "command", "CommandHeaders", "campaignId", "A command for a campaign.")
    secret_refs = add(secret_events, "secret", "SecretHeaders", "sessionId",
                      "The whole copy of a session event whose secret (QR or pairing code) the event log leaves "
                      "out: same type, eventId and ce_sequence, with the secret.")
    messages["deadLetteredCommand"] = {
        "name": "deadLetteredCommand", "title": "Dead-lettered command",
        "summary": "A command that could not be parsed or kept failing, moved aside with the reason.",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "The original record's value, byte for byte: a command (commands/*.json) "
                                   "when it parsed, otherwise whatever was produced."},
        "bindings": key("sessionId (the original record's key)"),
    }
    messages["sessionSnapshot"] = {
        "name": "sessionSnapshot", "title": "Session snapshot", "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/SessionSnapshot"}, "bindings": key("sessionId"),
    }
    messages["checkpoint"] = {
        "name": "checkpoint", "title": "Checkpoint", "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/Checkpoint"}, "bindings": key("the string __checkpoint__"),
    }

    def channel(address: str, description: str, refs: dict[str, Any], retention_ms: int,
                policy: str = "delete") -> dict[str, Any]:
        config: dict[str, Any] = {"cleanup.policy": [policy]}
        if policy == "delete":
            config["retention.ms"] = retention_ms
        return {"address": address, "description": description, "messages": refs,
                "bindings": {"kafka": {"partitions": kafka.partitions, "topicConfiguration": config,
                                       "bindingVersion": "0.5.0"}}}

    channels = {
        "sessionCommands": channel(
            topics.session_commands, "Commands for sessions, produced by the command API (and other services "
            "acting for a tenant), consumed by session runners. Keyed by sessionId.", cmd_refs,
            kafka.command_retention_ms),
        "sessionEvents": channel(
            topics.session_events, "Every event of the Session aggregate, kept forever; the source of truth "
            "replays read. Keyed by sessionId, co-partitioned with the commands.", ev_refs, kafka.event_retention_ms),
        "sessionSecrets": channel(
            topics.session_secrets, "Short-lived secrets, off the event log kept forever: the whole copies of the "
            "session events that carry a QR code (session.qr.updated) or a pairing code (a "
            "session.request_pair_code's session.command.succeeded), written in the same transactions as their "
            "redacted copies on the session event topic (header zs_redacted). Kept only an hour by default "
            "(KAFKA__SECRET_RETENTION_MS): the codes expire within minutes and replays do not need them. Keyed by "
            "sessionId, co-partitioned with the session events.", secret_refs, kafka.secret_retention_ms),
        "sessionCommandsDlq": channel(
            topics.session_commands_dlq, "Commands the runner could not parse or that failed after bounded "
            "retries, with the reason and origin in zs_* headers.",
            {"deadLetteredCommand": {"$ref": "#/components/messages/deadLetteredCommand"}}, kafka.dlq_retention_ms),
        "sessionSnapshots": channel(
            topics.session_snapshots, "Runner-internal, compacted: the latest snapshot of each session and the "
            "latest checkpoint. Not a public contract; described so that every topic is.",
            {"sessionSnapshot": {"$ref": "#/components/messages/sessionSnapshot"},
             "checkpoint": {"$ref": "#/components/messages/checkpoint"}}, -1, policy="compact"),
        "identityEvents": channel(
            f"{kafka.topic_prefix}.identity.events", "Identity and access events of each tenant (users, API keys, "
            "chat assignments, webhooks), published by the command API's outbox relay; kept forever. Keyed by "
            "tenantId. Personal data (e-mails, names) is encrypted per user: see docs/events.md.",
            id_refs, kafka.event_retention_ms),
        "campaignCommands": channel(
            topics.campaign_commands, "Commands for campaigns, from the command API and the campaign runner's "
            "outcome router. Keyed by campaignId.", ccmd_refs, kafka.command_retention_ms),
        "campaignEvents": channel(
            topics.campaign_events, "Every event of the Campaign aggregate (and tenants' suppressions), kept "
            "forever. Keyed by campaignId (suppressions by tenantId).", cev_refs, kafka.event_retention_ms),
    }

    def op(action: str, ch: str, summary: str) -> dict[str, Any]:
        return {"action": action, "channel": {"$ref": f"#/channels/{ch}"}, "summary": summary}

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "zapstream topics",
            "version": "1.1.0",
            "description": "Kafka topics of zapstream. Every record's value is JSON; its headers follow the "
                           "CloudEvents Kafka binding (ce_*) plus a W3C traceparent. See docs/events.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "dev": {"host": kafka.bootstrap_servers, "protocol": "kafka", "protocolVersion": "3.9",
                    "description": "The single-node development broker started by `make infra-up`."},
            "production": {
                "host": "{bootstrap}", "protocol": "kafka-secure", "protocolVersion": "3.9",
                "description": "A replicated cluster (3 brokers or more, min.insync.replicas=2) over TLS with SASL "
                               "(see docs/operations.md). Topic names carry the deployment's prefix.",
                "variables": {"bootstrap": {"default": "kafka-1.example.internal:9093",
                                            "description": "One of the cluster's bootstrap brokers."}},
                "security": [{"$ref": "#/components/securitySchemes/saslScram"}],
            },
        },
        "channels": channels,
        "operations": {
            "sendSessionCommand": op("send", "sessionCommands", "The command API publishes a command."),
            "receiveSessionCommand": op("receive", "sessionCommands", "A session runner handles a command."),
            "receiveSessionEvent": op("receive", "sessionEvents", "Projector, ws-gateway, webhooks, analytics."),
            "sendSessionEvent": op("send", "sessionEvents", "A session runner commits events (transactional)."),
            "sendSessionSecret": op("send", "sessionSecrets", "A session runner commits a secret with its event."),
            "receiveSessionSecret": op("receive", "sessionSecrets",
                                       "The ws-gateway (to sockets) and the projector (current QR, pairing codes)."),
            "sendDeadLetter": op("send", "sessionCommandsDlq", "A runner moves a failing command aside."),
            "receiveDeadLetter": op("receive", "sessionCommandsDlq", "Operators list and re-drive dead letters."),
            "sendSnapshot": op("send", "sessionSnapshots", "A runner checkpoints its sessions."),
            "receiveSnapshot": op("receive", "sessionSnapshots", "A new partition owner restores its sessions."),
            "sendIdentityEvent": op("send", "identityEvents", "The command API's outbox relay publishes."),
            "receiveIdentityEvent": op("receive", "identityEvents", "Caches, webhooks and analytics."),
            "sendCampaignCommand": op("send", "campaignCommands", "The command API and the outcome router."),
            "receiveCampaignCommand": op("receive", "campaignCommands", "The campaign runner."),
            "sendCampaignEvent": op("send", "campaignEvents", "The campaign runner (transactional)."),
            "receiveCampaignEvent": op("receive", "campaignEvents", "Projector, ws-gateway, analytics."),
        },
        "components": {
            "schemas": {**header_schemas(), **SNAPSHOT_SCHEMAS},
            "messages": messages,
            "securitySchemes": {"saslScram": {"type": "scramSha512",
                                              "description": "SASL/SCRAM over TLS (or PLAIN on managed clusters)."}},
        },
    }


def write(root: Path) -> list[str]:
    changed = []
    for rel, data in generate().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            changed.append(rel)
    return changed


def _older_versions() -> set[str]:
    """Files of earlier versions of each event: kept forever, never regenerated."""
    return {f"events/{ev.type}.v{v}.json" for ev in SESSION_EVENTS.values() for v in range(1, ev.version)}


def stale(root: Path) -> list[str]:
    wanted = generate()
    kept = _older_versions()
    present = {str(p.relative_to(root)) for p in root.rglob("*.json")}
    differ = [rel for rel, data in wanted.items() if not (root / rel).exists() or (root / rel).read_bytes() != data]
    missing_history = [f"{rel} (earlier version deleted)" for rel in sorted(kept - present)]
    return sorted(differ + sorted(present - set(wanted) - kept) + missing_history)


def _payload(schema: dict[str, Any]) -> dict[str, Any]:
    """The part of a record schema that evolves: the envelope's payload, or a whole command."""
    props = schema.get("properties", {})
    payload: dict[str, Any] = props["payload"] if "payload" in props else schema
    return payload


# ``x-pii`` marks a personal field (encrypted per data subject): documentation, the wire type stays the same.
_ANNOTATIONS = {"title", "description", "examples", "default", "deprecated", "$comment", "additionalProperties",
                "x-pii"}


def _resolve(spec: Any, doc: dict[str, Any]) -> Any:
    while isinstance(spec, dict) and isinstance(spec.get("$ref"), str) and spec["$ref"].startswith("#/$defs/"):
        spec = doc.get("$defs", {}).get(spec["$ref"].removeprefix("#/$defs/"), {})
    return spec


def _diff(o: Any, n: Any, od: dict[str, Any], nd: dict[str, Any], where: str, out: list[str]) -> None:
    """Append why values valid under ``o`` may be invalid under ``n``; additions of optional fields are fine."""
    o, n = _resolve(o, od), _resolve(n, nd)
    if not (isinstance(o, dict) and isinstance(n, dict)):
        if o != n:
            out.append(f"field {where!r} changed type")
        return
    if "properties" in o or "properties" in n:
        for name in sorted(set(n.get("required", [])) - set(o.get("required", []))):
            out.append(f"new required field {_join(where, name)!r}")
        for name, spec in o.get("properties", {}).items():
            if name not in n.get("properties", {}):
                out.append(f"field {_join(where, name)!r} removed or renamed")
            else:
                _diff(spec, n["properties"][name], od, nd, _join(where, name), out)
        rest_o = {k: v for k, v in o.items() if k not in _ANNOTATIONS | {"properties", "required"}}
        rest_n = {k: v for k, v in n.items() if k not in _ANNOTATIONS | {"properties", "required"}}
        if rest_o != rest_n and where:
            out.append(f"field {where!r} changed type")
        return
    if "items" in o and "items" in n:
        _diff(o["items"], n["items"], od, nd, f"{where}[]", out)
        o = {k: v for k, v in o.items() if k != "items"}
        n = {k: v for k, v in n.items() if k != "items"}
    if "anyOf" in o and "anyOf" in n and len(o["anyOf"]) == len(n["anyOf"]):
        for a, b in zip(o["anyOf"], n["anyOf"], strict=True):
            _diff(a, b, od, nd, where, out)
        o = {k: v for k, v in o.items() if k != "anyOf"}
        n = {k: v for k, v in n.items() if k != "anyOf"}
    strip = {k: v for k, v in o.items() if k not in _ANNOTATIONS}
    if strip != {k: v for k, v in n.items() if k not in _ANNOTATIONS}:
        out.append(f"field {where!r} changed type")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why documents valid under ``old`` may not be valid under ``new`` (empty when additive).

    Breaking: a field removed or renamed, retyped (type, format, enum, const, item type), or newly required,
    at any depth. Not breaking: a new optional field, new descriptions, dropping ``additionalProperties``.
    """
    reasons: list[str] = []
    _diff(_payload(old), _payload(new), old, new, "", reasons)
    return list(dict.fromkeys(reasons))


def compatibility(root: Path) -> list[str]:
    """Problems that make the current schemas unable to read what earlier versions wrote.

    A breaking change is allowed only as a new ``version`` (in ``zapstream_contracts.events``) with an upcaster
    for every step; additive changes (new optional fields) need neither. Identity events and
    commands are checked the same way (a command or identity event that must break gets a new type).
    """
    problems = []
    generated = generate()
    for ev in SESSION_EVENTS.values():
        current = orjson.loads(generated[f"events/{ev.type}.v{ev.version}.json"])
        committed = root / f"events/{ev.type}.v{ev.version}.json"
        if committed.exists():
            reasons = breaking_changes(orjson.loads(committed.read_bytes()), current)
            if reasons:
                problems.append(
                    f"{ev.type} v{ev.version} changed incompatibly ({'; '.join(reasons)}): "
                    f"bump its version to {ev.version + 1} and add an upcaster from v{ev.version}"
                )
        for v in range(1, ev.version):
            if not callable(ev.upcasters.get(v)):
                problems.append(f"{ev.type}: version {ev.version} lacks an upcaster from v{v} to v{v + 1}")
            older = root / f"events/{ev.type}.v{v}.json"
            if not older.exists():
                problems.append(f"{ev.type}: schema of v{v} is missing from schemas/ (it must be kept)")
    session_current = {f"events/{ev.type}.v{ev.version}.json" for ev in SESSION_EVENTS.values()}
    for rel, data in generated.items():
        if (not rel.startswith(("commands/", "identity/", "events/", "secrets/")) or rel in session_current
                or not (root / rel).exists()):
            continue
        reasons = breaking_changes(orjson.loads((root / rel).read_bytes()), orjson.loads(data))
        if reasons:
            problems.append(f"{rel} changed incompatibly ({'; '.join(reasons)})")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(prog="schemagen")
    parser.add_argument("--root", type=Path, default=Path("schemas"))
    parser.add_argument("--check", action="store_true", help="exit 1 if schemas/ is stale")
    args = parser.parse_args()
    if args.check:
        incompatible = compatibility(args.root)
        if incompatible:
            print("incompatible schema changes:", *incompatible, sep="\n  ")
            sys.exit(1)
        bad = stale(args.root)
        if bad:
            print("stale schemas (run make schemas):", *bad, sep="\n  ")
            sys.exit(1)
        return
    print("written:", write(args.root) or "nothing changed")


if __name__ == "__main__":
    main()
