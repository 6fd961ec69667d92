"""Generate ``schemas/`` from the domain: JSON Schema per command and event, and an AsyncAPI 3 document.

``python -m zapstream_platform.schemagen`` rewrites the files; the test suite
fails when the checked-in files differ from what the code generates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from zapstream_domain.commands import COMMAND_TYPES
from zapstream_domain.payloads import SessionSnapshot
from zapstream_domain.session import EVENT_CLASSES

from .settings import KafkaSettings
from .topics import Topics

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://zapstream.dev/schemas"


def _envelope_schema(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    defs = payload.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}/events/{type_}.json",
        "title": type_,
        "type": "object",
        "required": ["type", "sessionId", "eventId", "occurredOn", "payload"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": type_},
            "sessionId": {"type": "string"},
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
        files[f"events/{ev.TYPE}.json"] = _envelope_schema(ev.TYPE, payload)
    files["events/session.snapshot.json"] = _envelope_schema(
        "session.snapshot", SessionSnapshot.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    )
    for cmd in COMMAND_TYPES:
        schema = cmd.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        schema = {"$schema": DIALECT, "$id": f"{ID_BASE}/commands/{cmd.TYPE}.json", **schema}
        files[f"commands/{cmd.TYPE}.json"] = schema
    files["asyncapi.json"] = _asyncapi(sorted(k for k in files if k.startswith("events/")),
                                       sorted(k for k in files if k.startswith("commands/")))
    return {path: orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
            for path, doc in files.items()}


def _asyncapi(events: list[str], commands: list[str]) -> dict[str, Any]:
    topics = Topics.from_settings(KafkaSettings())

    def name(path: str) -> str:
        return Path(path).stem.replace(".", "_")

    messages_ev = {name(p): {"name": Path(p).stem, "contentType": "application/json", "payload": {"$ref": p}}
                   for p in events}
    messages_cmd = {name(p): {"name": Path(p).stem, "contentType": "application/json", "payload": {"$ref": p}}
                    for p in commands}
    key = {"type": "string", "description": "sessionId"}
    return {
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


def write(root: Path) -> list[str]:
    changed = []
    for rel, data in generate().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            changed.append(rel)
    return changed


def stale(root: Path) -> list[str]:
    wanted = generate()
    present = {str(p.relative_to(root)) for p in root.rglob("*.json")}
    differ = [rel for rel, data in wanted.items() if not (root / rel).exists() or (root / rel).read_bytes() != data]
    return sorted(differ + sorted(present - set(wanted)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="schemagen")
    parser.add_argument("--root", type=Path, default=Path("schemas"))
    parser.add_argument("--check", action="store_true", help="exit 1 if schemas/ is stale")
    args = parser.parse_args()
    if args.check:
        bad = stale(args.root)
        if bad:
            print("stale schemas (run make schemas):", *bad, sep="\n  ")
            sys.exit(1)
        return
    print("written:", write(args.root) or "nothing changed")


if __name__ == "__main__":
    main()
