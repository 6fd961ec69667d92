"""Request and response bodies of the webhooks slice (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from zapstream_domain.session import EVENTS_BY_TYPE
from zapstream_platform.webhooks import valid_type_filter

Url = Annotated[str, Field(min_length=8, max_length=2048)]
TypeFilter = Annotated[str, Field(min_length=1, max_length=100)]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _checked_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    bad = [t for t in value if not valid_type_filter(t, EVENTS_BY_TYPE)]
    if bad:
        raise ValueError(f"unknown event types: {', '.join(sorted(bad)[:5])} (use exact types, 'prefix.*' or '*')")
    return sorted(set(value))


class EndpointCreate(Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              json_schema_extra={"examples": [{"url": "https://hooks.example.com/zapstream", "eventTypes": ["session.messages.*"], "description": "CRM"}]})

    url: Url
    event_types: Annotated[list[TypeFilter], Field(max_length=50)] = []
    session_ids: Annotated[list[uuid.UUID], Field(max_length=100)] = []
    description: Annotated[str | None, Field(max_length=200)] = None

    _types = field_validator("event_types")(_checked_types)


class EndpointUpdate(Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              json_schema_extra={"examples": [{"eventTypes": ["session.status.*", "session.messages.upsert"]}]})

    url: Url | None = None
    event_types: Annotated[list[TypeFilter] | None, Field(max_length=50)] = None
    session_ids: Annotated[list[uuid.UUID] | None, Field(max_length=100)] = None
    description: Annotated[str | None, Field(max_length=200)] = None

    _types = field_validator("event_types")(_checked_types)


class RotateSecret(Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              json_schema_extra={"examples": [{"graceSeconds": 3600}]})

    # How long the old secret keeps signing too (receivers accept either while they switch).
    grace_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 24 * 3600


class Redrive(Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              json_schema_extra={"examples": [{"ids": [42, 43]}]})

    # Dead letters to re-drive; omitted: all of the endpoint's.
    ids: Annotated[list[Annotated[int, Field(ge=1, le=2**62)]] | None, Field(max_length=1000)] = None


class Replay(Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              json_schema_extra={"examples": [{"from": "2026-12-01T00:00:00Z"}]})

    from_: datetime = Field(alias="from")


class EndpointView(Body):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    session_ids: list[str]
    status: Literal["active", "paused", "disabled"]
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointView):
    secret: str


class EndpointList(Body):
    webhooks: list[EndpointView]


class SecretRotated(Body):
    secret: str
    previous_secret_expires_at: datetime


class DeliveryView(Body):
    id: int
    event_id: str
    event_type: str
    session_id: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    dead_at: datetime | None


class DeliveryList(Body):
    deliveries: list[DeliveryView]


class AttemptView(Body):
    delivery_id: int
    event_id: str
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: int
    attempted_at: datetime


class AttemptList(Body):
    attempts: list[AttemptView]


class Redriven(Body):
    redriven: int


class ReplayAccepted(Body):
    replay_id: int
