"""Wire payloads of the Campaign aggregate's events (camelCase on the wire, like the session's)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from .payloads import PII, MediaRef, Wire

CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"]
RecipientStatus = Literal[
    "pending", "typing", "sending", "retrying", "sent", "delivered", "read", "failed", "skipped", "cancelled"
]
OutcomeKind = Literal["succeeded", "failed", "delivered", "read"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"sent", "delivered", "read", "failed", "skipped", "cancelled"})
"""A recipient in one of these has nothing more to send (receipts may still move sent → read)."""
RECEIPT_RANK: dict[str, int] = {"sent": 0, "delivered": 1, "read": 2}
MAX_RETRIES = 3
"""Seed 004: three automatic retries (four attempts) for transient failures."""
NOT_AUTO_RETRIED: frozenset[str] = frozenset({"outcome_unknown"})
"""Retryable for a client that knows what it does, but the message may have gone out: a campaign retry
(a new attempt is a new message id) could deliver it twice, so the recipient fails with this code and only
an explicit retry-failed sends again."""


class Pacing(Wire):
    """How fast one number sends. Every field has a default; a campaign may set any of them."""

    enabled: bool = True
    base_delay_s: float = Field(default=8.0, ge=0, le=3600)
    jitter_s: float = Field(default=4.0, ge=0, le=3600)
    typing: bool = True  # show "typing…" before each message, for a time proportional to its length
    typing_chars_per_s: float = Field(default=25.0, gt=0, le=1000)
    typing_max_s: float = Field(default=8.0, ge=0, le=60)
    per_hour: int = Field(default=120, ge=1, le=100_000)
    per_day: int = Field(default=1000, ge=1, le=1_000_000)
    # Day caps for a number's first days of sending (day 0, 1, …); afterwards ``per_day``.
    warmup: list[int] = Field(default_factory=lambda: [50, 100, 200, 400, 700], max_length=60)
    quiet_start: str | None = Field(default="21:00", pattern=r"^\d{2}:\d{2}$")  # tenant's local time
    quiet_end: str | None = Field(default="08:00", pattern=r"^\d{2}:\d{2}$")
    max_in_flight: int = Field(default=1, ge=1, le=1000)  # sends of one number awaiting their outcome
    retry_base_s: float = Field(default=30.0, ge=0, le=86_400)  # backoff: base · 2^(attempt-1)


class CampaignSession(Wire):
    """A number the campaign sends through; ``linked_at`` dates it for the warm-up schedule."""

    session_id: str
    linked_at: str | None = None


class CampaignMessage(Wire):
    """Text (a template with ``{nombre}``, ``{sustantivo}``, ``{grupo}``), images with a caption, or a voice note."""

    # The template may name a recipient or carry anything personal: personal data (encrypted on the topic).
    text: str | None = Field(default=None, max_length=4096, json_schema_extra=PII)
    media: list[MediaRef] = Field(default_factory=list, max_length=10)


class Recipient(Wire):
    id: str
    seq: int  # position in the file / selection: sending follows it (FIFO)
    # Personal data, encrypted per tenant on the topic (``None`` once the tenant's key was erased). The
    # recipient ``id`` (not the phone) is what every later event refers to, so nothing joins on the phone.
    phone: str | SkipJsonSchema[None] = Field(json_schema_extra=PII)
    nombre: str | None = Field(default=None, json_schema_extra=PII)
    sustantivo: str | None = Field(default=None, json_schema_extra=PII)
    grupo: str | None = Field(default=None, json_schema_extra=PII)
    contact_id: str | None = None
    skip_reason: str | None = None  # set when the recipient must not be sent to (suppressed, duplicate)


class CampaignCreated(Wire):
    tenant_id: str
    name: str
    message: CampaignMessage
    sessions: list[CampaignSession]
    pacing: Pacing
    timezone: str
    expected_recipients: int
    created_at: str


class RecipientsAdded(Wire):
    tenant_id: str
    chunk: int
    recipients: list[Recipient]


class StatusChanged(Wire):
    """``campaign.status``: the campaign moved to ``status`` (pushed to the tenant's WebSocket)."""

    tenant_id: str
    status: CampaignStatus
    previous: CampaignStatus | None = None
    reason: str | None = None
    scheduled_at: str | None = None
    at: str


class Typing(Wire):
    recipient_id: str
    session_id: str
    send_at: str


class RecipientsTyping(Wire):
    tenant_id: str
    items: list[Typing]


class Dispatch(Wire):
    recipient_id: str
    session_id: str
    attempt: int
    command_ids: list[str]
    parts: list[int]
    at: str


class RecipientsDispatched(Wire):
    tenant_id: str
    items: list[Dispatch]


class RecipientUpdate(Wire):
    recipient_id: str
    status: RecipientStatus
    at: str
    part: int | None = None  # a part that succeeded while others are still out
    code: str | None = None
    reason: str | None = None
    retry_at: str | None = None
    message_id: str | None = None


class RecipientsUpdated(Wire):
    tenant_id: str
    updates: list[RecipientUpdate]


class RetryRequested(Wire):
    tenant_id: str
    recipient_ids: list[str]
    at: str


class Counts(Wire):
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


class Progressed(Wire):
    """``campaign.progress``: counts after a change (pushed to the tenant's WebSocket)."""

    tenant_id: str
    status: CampaignStatus
    counts: Counts
    at: str


class SuppressionAdded(Wire):
    """A number opted out by replying a stop word (or was added by hand); keyed by tenant."""

    tenant_id: str
    phone: str | SkipJsonSchema[None] = Field(json_schema_extra=PII)  # encrypted per tenant on the topic
    reason: str
    source: str
    session_id: str | None = None
    message_id: str | None = None
    at: str


class Outcome(Wire):
    """What the session events said about one of a campaign's send commands."""

    command_id: str
    kind: OutcomeKind
    at: str
    code: str | None = None
    reason: str | None = None
    retryable: bool = False
