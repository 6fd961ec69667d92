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

from zapstream_domain.campaign import EVENT_CLASSES as CAMPAIGN_EVENT_CLASSES
from zapstream_domain.campaign import SUPPRESSION_ADDED
from zapstream_domain.campaign_commands import CAMPAIGN_COMMAND_TYPES
from zapstream_domain.campaign_payloads import SuppressionAdded
from zapstream_domain.commands import COMMAND_TYPES
from zapstream_domain.payloads import SessionSnapshot
from zapstream_domain.session import EVENT_CLASSES

from .settings import KafkaSettings
from .topics import Topics

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://zapstream.dev/schemas"


def _envelope_schema(type_: str, payload: dict[str, Any], version: int = 1, subject: str = "sessionId") -> dict[str, Any]:
    defs = payload.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}/events/{type_}.v{version}.json",
        "title": type_,
        "type": "object",
        "required": ["type", subject, "eventId", "occurredOn", "payload"],
        "additionalProperties": False,
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


def generate() -> dict[str, bytes]:
    """Return ``{relative path: file bytes}`` for everything under ``schemas/``."""
    files: dict[str, dict[str, Any]] = {}
    for ev in EVENT_CLASSES:
        payload = ev.PAYLOAD.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        files[f"events/{ev.TYPE}.v{ev.class_version}.json"] = _envelope_schema(ev.TYPE, payload, ev.class_version)
    files["events/session.snapshot.v1.json"] = _envelope_schema(
        "session.snapshot", SessionSnapshot.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    )
    for cmd in COMMAND_TYPES:
        schema = cmd.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        schema = {"$schema": DIALECT, "$id": f"{ID_BASE}/commands/{cmd.TYPE}.json", **schema}
        files[f"commands/{cmd.TYPE}.json"] = schema
    campaign_events = [(ev.TYPE, ev.PAYLOAD) for ev in CAMPAIGN_EVENT_CLASSES]
    campaign_events.append((SUPPRESSION_ADDED, SuppressionAdded))
    for type_, model in campaign_events:
        payload = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        files[f"events/{type_}.v1.json"] = _envelope_schema(type_, payload, 1, subject="campaignId")
    for ccmd in CAMPAIGN_COMMAND_TYPES:
        schema = ccmd.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        files[f"commands/{ccmd.TYPE}.json"] = {"$schema": DIALECT, "$id": f"{ID_BASE}/commands/{ccmd.TYPE}.json",
                                               **schema}
    files["asyncapi.json"] = _asyncapi(sorted(k for k in files if k.startswith("events/session.")),
                                       sorted(k for k in files if k.startswith("commands/session.")),
                                       sorted(k for k in files if k.startswith("events/campaign.")),
                                       sorted(k for k in files if k.startswith("commands/campaign.")))
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


def _asyncapi(events: list[str], commands: list[str], campaign_events: list[str] | None = None,
              campaign_commands: list[str] | None = None) -> dict[str, Any]:
    topics = Topics.from_settings(KafkaSettings())

    def name(path: str) -> str:
        return Path(path).stem.replace(".", "_")

    messages_ev = {name(p): {"name": Path(p).stem, "contentType": "application/json", "payload": {"$ref": p}}
                   for p in events}
    messages_cmd = {name(p): {"name": Path(p).stem, "contentType": "application/json", "payload": {"$ref": p}}
                    for p in commands}
    key = {"type": "string", "description": "sessionId"}
    messages_cev = {name(p): {"name": Path(p).stem, "contentType": "application/json", "payload": {"$ref": p}}
                    for p in campaign_events or []}
    messages_ccmd = {name(p): {"name": Path(p).stem, "contentType": "application/json", "payload": {"$ref": p}}
                     for p in campaign_commands or []}
    campaign_key = {"type": "string", "description": "campaignId (tenantId for campaign.suppression.added)"}
    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "zapstream topics",
            "version": "1.0.0",
            "description": "Kafka topics of zapstream. One topic per aggregate type, all keyed by sessionId "
                           "and co-partitioned. Records carry CloudEvents headers (ce_*) and a W3C traceparent.",
        },
        "defaultContentType": "application/json",
        "channels": {
            "sessionCommands": {
                "address": topics.session_commands,
                "description": "Commands for sessions, produced by the command API, consumed by session runners.",
                "messages": messages_cmd,
                "bindings": {"kafka": {"partitions": KafkaSettings().partitions, "key": key}},
            },
            "sessionEvents": {
                "address": topics.session_events,
                "description": "Every event of the Session aggregate, kept forever; the source of truth replays read.",
                "messages": messages_ev,
                "bindings": {"kafka": {"partitions": KafkaSettings().partitions, "key": key,
                                       "topicConfiguration": {"retention.ms": -1}}},
            },
            "sessionCommandsDlq": {
                "address": topics.session_commands_dlq,
                "description": "Commands that could not be parsed, with the reason in the zs_reason header.",
                "messages": {},
            },
        },
        "operations": {
            "sendSessionCommand": {"action": "send", "channel": {"$ref": "#/channels/sessionCommands"}},
            "receiveSessionCommand": {"action": "receive", "channel": {"$ref": "#/channels/sessionCommands"}},
            "sendSessionEvent": {"action": "send", "channel": {"$ref": "#/channels/sessionEvents"}},
            "receiveSessionEvent": {"action": "receive", "channel": {"$ref": "#/channels/sessionEvents"}},
        },
    }
    doc["channels"]["campaignCommands"] = {
        "address": topics.campaign_commands,
        "description": "Commands for campaigns, from the command API and the campaign runner's outcome router.",
        "messages": messages_ccmd,
        "bindings": {"kafka": {"partitions": KafkaSettings().partitions, "key": campaign_key}},
    }
    doc["channels"]["campaignEvents"] = {
        "address": topics.campaign_events,
        "description": "Every event of the Campaign aggregate (and tenants' suppressions), kept forever.",
        "messages": messages_cev,
        "bindings": {"kafka": {"partitions": KafkaSettings().partitions, "key": campaign_key,
                               "topicConfiguration": {"retention.ms": -1}}},
    }
    doc["operations"] |= {
        "sendCampaignCommand": {"action": "send", "channel": {"$ref": "#/channels/campaignCommands"}},
        "receiveCampaignCommand": {"action": "receive", "channel": {"$ref": "#/channels/campaignCommands"}},
        "sendCampaignEvent": {"action": "send", "channel": {"$ref": "#/channels/campaignEvents"}},
        "receiveCampaignEvent": {"action": "receive", "channel": {"$ref": "#/channels/campaignEvents"}},
    }
    return doc


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
    return {f"events/{ev.TYPE}.v{v}.json" for ev in EVENT_CLASSES for v in range(1, ev.class_version)}


def stale(root: Path) -> list[str]:
    wanted = generate()
    kept = _older_versions()
    present = {str(p.relative_to(root)) for p in root.rglob("*.json")}
    differ = [rel for rel, data in wanted.items() if not (root / rel).exists() or (root / rel).read_bytes() != data]
    missing_history = [f"{rel} (earlier version deleted)" for rel in sorted(kept - present)]
    return sorted(differ + sorted(present - set(wanted) - kept) + missing_history)


def _payload(schema: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = schema["properties"]["payload"]
    return payload


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why documents valid under ``old`` may not be valid under ``new`` (empty when additive)."""
    o, n = _payload(old), _payload(new)
    reasons = []
    for name in sorted(set(n.get("required", [])) - set(o.get("required", []))):
        reasons.append(f"new required field {name!r}")
    for name, spec in o.get("properties", {}).items():
        if name not in n.get("properties", {}):
            reasons.append(f"field {name!r} removed or renamed")
        elif n["properties"][name] != spec:
            reasons.append(f"field {name!r} changed type")
    return reasons


def compatibility(root: Path) -> list[str]:
    """Problems that make the current schemas unable to read what earlier versions wrote.

    A breaking change is allowed only as a new ``class_version`` with an upcaster
    for every step; additive changes (new optional fields) need neither.
    """
    problems = []
    generated = generate()
    for ev in EVENT_CLASSES:
        current = orjson.loads(generated[f"events/{ev.TYPE}.v{ev.class_version}.json"])
        committed = root / f"events/{ev.TYPE}.v{ev.class_version}.json"
        if committed.exists():
            reasons = breaking_changes(orjson.loads(committed.read_bytes()), current)
            if reasons:
                problems.append(
                    f"{ev.TYPE} v{ev.class_version} changed incompatibly ({'; '.join(reasons)}): "
                    f"bump class_version to {ev.class_version + 1} and add upcast_v{ev.class_version}_v"
                    f"{ev.class_version + 1}"
                )
        for v in range(1, ev.class_version):
            if not callable(getattr(ev, f"upcast_v{v}_v{v + 1}", None)):
                problems.append(f"{ev.TYPE}: class_version {ev.class_version} lacks upcast_v{v}_v{v + 1}")
            older = root / f"events/{ev.TYPE}.v{v}.json"
            if not older.exists():
                problems.append(f"{ev.TYPE}: schema of v{v} is missing from schemas/ (it must be kept)")
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
