"""Request and response models of the sessions slice."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from command_api.shared.bodies import Body, Phone, View

SESSION_ID = "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901"


class CreateSessionBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"name": "tienda_lima"}]})

    name: str | None = Field(default=None, max_length=200)


class StopSessionBody(Body):
    """Seed 000: ``{"reason": "logout"}`` unlinks the device; any other reason (or none) keeps it linked."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "logout"}, {}]})

    reason: str | None = Field(default=None, min_length=1, max_length=200)


class PairCodeBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "51999999999"}]})

    phone: Phone


class SessionView(View):
    """Seed 001's SessionPrimitives, plus ``qrImage`` (the QR as a PNG data URL) and ``name``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": SESSION_ID, "tenantId": "9e3a5b9c-56b9-4b8d-9e2b-5c3a1f4b9a12", "name": None, "status": "connected",
        "phone": "51999999999", "qr": None, "qrImage": None, "qrExpiresAt": None,
        "connectedAt": "2026-01-01T00:00:00.000Z", "disconnectedAt": None, "disconnectedReason": None,
        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}]})

    id: str
    tenant_id: str
    name: str | None = None
    status: str = Field(description=(
        "created, qr_pending, connected, disconnected, logged_out; `reconnecting` while a new runner takes the "
        "session over after its owner was lost; `unknown` when its runner died and none has taken over yet"))
    phone: str | None = None
    qr: str | None = Field(default=None, description="The raw QR string to render (owners, admins, API keys only).")
    qr_image: str | None = Field(default=None, description="The same QR as a `data:image/png;base64,…` URL.")
    qr_expires_at: str | None = None
    connected_at: str | None = None
    disconnected_at: str | None = None
    disconnected_reason: str | None = None
    created_at: str
    updated_at: str


class SessionList(View):
    sessions: list[SessionView]


class PairCodeAnswer(View):
    command_id: str
    phone: str
    code: str


class CommandOutcome(View):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "commandId": "0f8e0c1e-3c2b-4a59-9a55-63d8a0b1c2d3", "sessionId": SESSION_ID,
        "type": "session.send_message", "status": "succeeded", "code": None, "reason": None,
        "result": {"messageId": "3EB0C0FFEE"}, "finishedAt": "2026-01-01T00:00:01.000Z"}]})

    command_id: str
    session_id: str
    type: str
    status: str = Field(description="succeeded or failed")
    code: str | None = None
    reason: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    finished_at: str
