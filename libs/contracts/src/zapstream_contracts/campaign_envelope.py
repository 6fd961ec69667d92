"""The envelope of campaign events: ``{type, campaignId, eventId, occurredOn, payload}`` plus CloudEvents headers.

The same headers as session events (``ce_tenantid`` routes a record to its
tenant's sockets, ``ce_sequence`` is the campaign's version), so the
ws-gateway can forward ``campaign.progress`` and ``campaign.status`` as they are.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from .envelope import DomainEventLike, dataschema, schema_version_of
from .events import current_version, parse_as, upcast
from .timefmt import iso

P = TypeVar("P", bound=BaseModel)

SOURCE = "/zapstream/campaign-runner"


@dataclass(frozen=True, slots=True)
class CampaignEnvelope:
    type: str
    campaign_id: str
    event_id: str
    occurred_on: str
    payload: dict[str, Any]
    version: int = 0
    traceparent: str | None = None

    @property
    def tenant_id(self) -> str:
        return str(self.payload.get("tenantId", ""))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "campaignId": self.campaign_id, "eventId": self.event_id,
                "occurredOn": self.occurred_on, "payload": self.payload}

    def value(self) -> bytes:
        return orjson.dumps(self.to_wire())

    def headers(self, source: str = SOURCE) -> list[tuple[str, bytes]]:
        version = current_version(self.type)
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", self.event_id.encode()),
            ("ce_source", source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.occurred_on.encode()),
            ("ce_subject", (self.campaign_id or self.tenant_id).encode()),
            ("ce_sequence", str(self.version).encode()),
            ("ce_tenantid", self.tenant_id.encode()),
            ("ce_dataschema", dataschema(self.type, version).encode()),
            ("ce_schemaversion", str(version).encode()),
            ("content-type", b"application/json"),
        ]
        if self.traceparent:
            headers.append(("traceparent", self.traceparent.encode()))
        return headers

    @classmethod
    def from_domain(cls, event: DomainEventLike, traceparent: str | None = None) -> CampaignEnvelope:
        payload = event.payload
        return cls(type=event.TYPE, campaign_id=str(event.originator_id), event_id=str(uuid.uuid4()),
                   occurred_on=iso(event.timestamp), payload=payload.model_dump(by_alias=True, mode="json"),
                   version=event.originator_version, traceparent=traceparent)

    @classmethod
    def standalone(cls, type_: str, payload: BaseModel, at: datetime) -> CampaignEnvelope:
        """A tenant-wide fact (e.g. a suppression): no campaign, version 0."""
        return cls(type=type_, campaign_id="", event_id=str(uuid.uuid4()), occurred_on=iso(at),
                   payload=payload.model_dump(by_alias=True, mode="json"))

    @classmethod
    def from_record(cls, value: bytes, headers: Any) -> CampaignEnvelope:
        body = orjson.loads(value)
        hdr = {k: v for k, v in headers or ()}
        return cls(type=body["type"], campaign_id=body.get("campaignId", ""), event_id=body["eventId"],
                   occurred_on=body["occurredOn"],
                   payload=upcast(body["type"], schema_version_of(
                       hdr["ce_dataschema"].decode() if "ce_dataschema" in hdr else None), body["payload"]),
                   version=int(hdr.get("ce_sequence", b"0") or 0),
                   traceparent=hdr["traceparent"].decode() if "traceparent" in hdr else None)

    def data(self, model: builtins.type[P]) -> P:
        """The payload as its contract model (see :func:`~zapstream_contracts.events.parse_as`)."""
        return parse_as(self.type, self.payload, model)

    def occurred_at(self) -> datetime:
        return datetime.strptime(self.occurred_on, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
