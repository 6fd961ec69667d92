"""Secrets of a session event (QR codes, pairing codes): off the event log, on a short-retention topic.

A QR code or a pairing code is valid for seconds to minutes, and replay never needs it. The event log is
kept forever, so it carries the event **without** the secret (``session.qr.updated`` v2 has no ``qr``; a
pairing ``session.command.succeeded`` v2 has no ``result.code``) and the header ``zs_redacted``. The
secrets topic (``<prefix>.session.secrets``, retention ``KAFKA__SECRET_RETENTION_MS``, one hour by
default) carries the **whole** event: the same type, ``sessionId``, ``eventId``, ``occurredOn`` and
headers (``ce_sequence`` included), with the secret in its payload, exactly as clients receive it over
the WebSocket (seed 001), and ``ce_dataschema`` under ``schemas/secrets/``. Both records are written by
the session runner in the same Kafka transaction, so a reader sees both or neither.

Readers join the two on ``eventId`` (the same fact, one copy redacted), or just read the secrets topic for
the secrets: the ws-gateway forwards its records to the sockets instead of their redacted copies, the
projector puts the current QR and pairing codes into the read model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from . import payloads as p
from .envelope import Envelope, schema_version_of
from .events import COMMAND_SUCCEEDED, PAIR_CODE_COMMAND, QR_UPDATED, EventSpec

SECRETS_SCHEMA_BASE = "https://zapstream.dev/schemas/secrets"
REDACTED_HEADER = "zs_redacted"
"""Set (to ``true``) on an event-log record whose whole copy, with its secret, is on the secrets topic."""

QR = EventSpec(QR_UPDATED.type, p.QrSecret,
               description="The QR a session shows, with its code, as clients receive it (seed 001).")
PAIR_CODE = EventSpec(COMMAND_SUCCEEDED.type, p.CommandSucceeded,
                      description="A session.request_pair_code's success with the pairing code in result.code.")

SECRET_EVENTS: dict[str, EventSpec[Any]] = {s.type: s for s in (QR, PAIR_CODE)}
"""The types on the secrets topic (each the unredacted copy of the session event of the same type)."""


def secret_dataschema(type_: str, version: int = 1) -> str:
    """The ``ce_dataschema`` URI of a secrets-topic record (matches ``schemas/secrets``)."""
    return f"{SECRETS_SCHEMA_BASE}/{type_}.v{version}.json"


def with_qr(event: Envelope, qr: str) -> Envelope:
    """The whole ``session.qr.updated`` for the secrets topic: ``event`` (the redacted one) plus its code.

    Built through :class:`~zapstream_contracts.payloads.QrSecret`, so the payload's keys come in the order
    clients have always received (``tenantId``, ``qr``, ``expiresAt``).
    """
    redacted = event.data(p.QrUpdated)
    whole = p.QrSecret(tenant_id=redacted.tenant_id, qr=qr, expires_at=redacted.expires_at)
    return replace(event, payload=whole.model_dump(by_alias=True, mode="json"), schema_version=1)


def with_pair_code(event: Envelope, code: str) -> Envelope:
    """The whole pairing ``session.command.succeeded`` for the secrets topic: ``result`` gets ``code`` first."""
    redacted = event.data(p.CommandSucceeded)
    if redacted.command_type != PAIR_CODE_COMMAND:
        raise ValueError(f"{redacted.command_type} carries no pairing code")
    whole = redacted.model_copy(update={"result": {"code": code, **redacted.result}})
    return replace(event, payload=whole.model_dump(by_alias=True, mode="json"), schema_version=1)


def redacted_headers(event: Envelope, source: str) -> list[tuple[str, bytes]]:
    """Headers of the event-log copy of an event whose secret went to the secrets topic."""
    return [*event.headers(source), (REDACTED_HEADER, b"true")]


def headers(secret: Envelope, source: str) -> list[tuple[str, bytes]]:
    """The event's headers, with ``ce_dataschema`` and ``ce_schemaversion`` naming the secrets schema."""
    version = secret.schema_version or 1
    own = {"ce_dataschema": secret_dataschema(secret.type, version).encode(), "ce_schemaversion": str(version).encode()}
    return [(k, own.get(k, v)) for k, v in secret.headers(source)]


def from_record(value: bytes, record_headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> Envelope:
    """Decode a secrets-topic record. Never upcast as a session event: the secret is what it is for."""
    body = orjson.loads(value)
    hdr = dict(record_headers)
    return Envelope(
        type=body["type"],
        session_id=body["sessionId"],
        event_id=body["eventId"],
        occurred_on=body["occurredOn"],
        payload=body["payload"],
        version=int(hdr.get("ce_sequence", b"0") or 0),
        traceparent=hdr["traceparent"].decode() if "traceparent" in hdr else None,
        schema_version=schema_version_of(hdr["ce_dataschema"].decode() if "ce_dataschema" in hdr else None),
    )


def qr_of(secret: Envelope) -> p.QrSecret | None:
    """The QR of a secrets-topic record (None for other types)."""
    return p.QrSecret.model_validate(secret.payload) if secret.type == QR.type else None


def pair_code_of(secret: Envelope) -> p.CommandSucceeded | None:
    """The pairing success of a secrets-topic record, ``result`` with ``code`` (None for other types)."""
    if secret.type != PAIR_CODE.type:
        return None
    outcome = p.CommandSucceeded.model_validate(secret.payload)
    return outcome if outcome.command_type == PAIR_CODE_COMMAND and "code" in outcome.result else None
