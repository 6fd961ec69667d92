"""The event envelope, on Kafka and over the WebSocket.

Value: the client's envelope ``{type, sessionId, eventId, occurredOn, payload}``
as JSON. Headers: CloudEvents' Kafka binding (``ce_*``), the aggregate version
(``ce_sequence``, used to rebuild aggregates) and a W3C ``traceparent``.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar

import orjson
from pydantic import BaseModel

from .events import current_version, parse_as, upcast
from .timefmt import iso

P = TypeVar("P", bound=BaseModel)

SPEC_VERSION = b"1.0"
SCHEMA_BASE = "https://zapstream.dev/schemas/events"
COMMAND_SCHEMA_BASE = "https://zapstream.dev/schemas/commands"
JSON = b"application/json"


def dataschema(type_: str, version: int) -> str:
    """The ``ce_dataschema`` URI of one version of an event type (matches ``schemas/events``)."""
    return f"{SCHEMA_BASE}/{type_}.v{version}.json"


def command_dataschema(type_: str) -> str:
    """The ``ce_dataschema`` URI of a command type (matches ``schemas/commands``; commands are unversioned v1)."""
    return f"{COMMAND_SCHEMA_BASE}/{type_}.json"


class DomainEventLike(Protocol):
    """A domain event (``zapstream_domain``'s aggregates' events): what an envelope is built from."""

    TYPE: ClassVar[str]
    originator_id: Any
    originator_version: int
    timestamp: datetime

    @property
    def payload(self) -> BaseModel: ...


class CommandLike(Protocol):
    """A session or campaign command (``zapstream_contracts.commands`` / ``campaign_commands``)."""

    TYPE: ClassVar[str]
    command_id: str
    tenant_id: str
    issued_at: str
    traceparent: str | None


def command_headers(command: CommandLike, source: str) -> list[tuple[str, bytes]]:
    """CloudEvents headers of a command record; every producer of a command topic uses this.

    ``ce_id`` is the commandId (a re-publish of the same command carries the same id), ``ce_subject``
    the aggregate it is for (sessionId or campaignId, also the record key), ``ce_time`` when it was issued.
    """
    subject = getattr(command, "session_id", None) or getattr(command, "campaign_id", "")
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", command.command_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", command.TYPE.encode()),
        ("ce_time", command.issued_at.encode()),
        ("ce_subject", str(subject).encode()),
        ("ce_tenantid", command.tenant_id.encode()),
        ("ce_dataschema", command_dataschema(command.TYPE).encode()),
        ("ce_schemaversion", b"1"),
        ("content-type", JSON),
    ]
    if command.traceparent:
        headers.append(("traceparent", command.traceparent.encode()))
    return headers


def identity_headers(type_: str, event_id: str, occurred_on: str, tenant_id: str, dataschema_uri: str,
                     source: str) -> list[tuple[str, bytes]]:
    """CloudEvents headers of an identity event record (keyed by tenant, so no ``ce_subject``)."""
    return [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type_.encode()),
        ("ce_time", occurred_on.encode()),
        ("ce_tenantid", tenant_id.encode()),
        ("ce_dataschema", dataschema_uri.encode()),
        ("ce_schemaversion", str(schema_version_of(dataschema_uri)).encode()),
        ("content-type", JSON),
    ]


def schema_version_of(uri: str | None) -> int:
    """Version named by a ``ce_dataschema`` URI; records written before versioning are v1."""
    if not uri or ".v" not in uri:
        return 1
    try:
        return int(uri.rsplit(".v", 1)[1].split(".", 1)[0])
    except ValueError:
        return 1


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    session_id: str
    event_id: str
    occurred_on: str
    payload: dict[str, Any]
    version: int = 0
    traceparent: str | None = None
    schema_version: int = 0  # 0: the event class's current version

    @property
    def tenant_id(self) -> str:
        return str(self.payload.get("tenantId", ""))

    def to_wire(self) -> dict[str, Any]:
        """The client's WebSocket format."""
        return {
            "type": self.type,
            "sessionId": self.session_id,
            "eventId": self.event_id,
            "occurredOn": self.occurred_on,
            "payload": self.payload,
        }

    def value(self) -> bytes:
        return orjson.dumps(self.to_wire())

    def headers(self, source: str) -> list[tuple[str, bytes]]:
        version = self.current_schema_version()
        headers = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.event_id.encode()),
            ("ce_source", source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.occurred_on.encode()),
            ("ce_subject", self.session_id.encode()),
            ("ce_sequence", str(self.version).encode()),
            ("ce_tenantid", self.tenant_id.encode()),
            ("ce_dataschema", dataschema(self.type, version).encode()),
            ("ce_schemaversion", str(version).encode()),
            ("content-type", JSON),
        ]
        if self.traceparent:
            headers.append(("traceparent", self.traceparent.encode()))
        return headers

    def current_schema_version(self) -> int:
        if self.schema_version:
            return self.schema_version
        return current_version(self.type)

    def data(self, model: builtins.type[P]) -> P:
        """The payload as its contract model (``env.data(p.MessagesEdit).edits``): the typed way to read it."""
        return parse_as(self.type, self.payload, model)

    @classmethod
    def from_domain(cls, event: DomainEventLike, traceparent: str | None = None) -> Envelope:
        return cls(
            type=event.TYPE,
            session_id=str(event.originator_id),
            event_id=str(uuid.uuid4()),
            occurred_on=iso(event.timestamp),
            payload=event.payload.model_dump(by_alias=True, mode="json"),
            version=event.originator_version,
            traceparent=traceparent,
        )

    @classmethod
    def from_record(cls, value: bytes, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> Envelope:
        """Decode a stored record, upcasting its payload to the current schema version."""
        body = orjson.loads(value)
        hdr = {k: v for k, v in headers}
        stored_version = schema_version_of(hdr["ce_dataschema"].decode() if "ce_dataschema" in hdr else None)
        return cls(
            type=body["type"],
            session_id=body["sessionId"],
            event_id=body["eventId"],
            occurred_on=body["occurredOn"],
            payload=upcast(body["type"], stored_version, body["payload"]),
            version=int(hdr.get("ce_sequence", b"0") or 0),
            traceparent=(hdr["traceparent"].decode() if "traceparent" in hdr else None),
        )

    def occurred_at(self) -> datetime:
        return datetime.strptime(self.occurred_on, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def snapshot(session_id: str | None, tenant_id: str, session: dict[str, Any] | None, now: datetime) -> Envelope:
    """The ``session.snapshot`` event sent when a WebSocket connects."""
    return Envelope(
        type="session.snapshot",
        session_id=session_id or "",
        event_id=str(uuid.uuid4()),
        occurred_on=iso(now),
        payload={"tenantId": tenant_id, "session": session},
    )
