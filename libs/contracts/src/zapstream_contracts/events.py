"""Every event type of the session and campaign topics: its name, payload model, version and upcasters.

This table is the contract. The domain's aggregates take their event names and payload models from it,
the runners write with it, and every reader (projector, ws-gateway, webhooks, analytics, the export)
decodes with it, so a type's shape and version are declared once. ``schemas/`` is generated from it.

A breaking change to a payload is a new ``version`` plus an upcaster from the one before
(``upcasters[v]`` turns a version ``v`` payload, as a dict, into version ``v + 1`` in place);
``make schemas-check`` refuses the change otherwise.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from . import campaign_payloads as cp
from . import payloads as p
from .timefmt import iso

P = TypeVar("P", bound=BaseModel)
Upcaster = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class EventSpec(Generic[P]):
    type: str
    payload: builtins.type[P]
    version: int = 1
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)
    description: str = ""

    def upcast(self, stored_version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` as written at ``stored_version``, brought up to this type's current version."""
        if stored_version >= self.version:
            return payload
        state = dict(payload)
        for v in range(max(stored_version, 1), self.version):
            self.upcasters[v](state)
        return state

    def parse(self, payload: Mapping[str, Any]) -> P:
        return self.payload.model_validate(payload)


def _delete_v1_v2(state: dict[str, Any]) -> None:
    """v2 writes a chat clear's ``deletedAt`` as RFC 3339 (our own field; v1 wrote epoch seconds)."""
    if isinstance(state.get("deletedAt"), int):
        state["deletedAt"] = iso(datetime.fromtimestamp(state["deletedAt"], UTC))


def _failed_v1_v2(state: dict[str, Any]) -> None:
    """v2 added ``retryable``; v1 events derive it from their code."""
    state["retryable"] = state.get("code") in p.RETRYABLE_CODES


PAIR_CODE_COMMAND = "session.request_pair_code"


def _qr_v1_v2(state: dict[str, Any]) -> None:
    """v2 no longer carries the QR code (a short-lived secret; it lives on the secrets topic for an hour)."""
    state.pop("qr", None)


def _succeeded_v1_v2(state: dict[str, Any]) -> None:
    """v2 no longer carries a pairing code in ``result`` (a secret; it lives on the secrets topic for an hour)."""
    result = state.get("result")
    if state.get("commandType") == PAIR_CODE_COMMAND and isinstance(result, dict) and "code" in result:
        state["result"] = {k: v for k, v in result.items() if k != "code"}


def _spec(type_: str, payload: type[P], version: int = 1, upcasters: Mapping[int, Upcaster] | None = None,
          description: str = "") -> EventSpec[P]:
    return EventSpec(type_, payload, version, upcasters or {}, description)


SESSION_CREATED = _spec("session.created", p.SessionCreated)
QR_UPDATED = _spec("session.qr.updated", p.QrUpdated, 2, {1: _qr_v1_v2},
                   description="The session shows a QR until expiresAt; the code itself is only on the secrets "
                               "topic (v1 carried it as qr).")
STATUS_CONNECTED = _spec("session.status.connected", p.StatusConnected)
STATUS_DISCONNECTED = _spec("session.status.disconnected", p.StatusDisconnected)
STATUS_LOGGED_OUT = _spec("session.status.logged_out", p.StatusLoggedOut)
SESSION_DELETED = _spec("session.deleted", p.SessionDeleted)
SESSION_STARTED = _spec("session.started", p.EventPayload,
                        description="A stopped or logged-out session was asked to connect again.")
SEND_REQUESTED = _spec("session.messages.send_requested", p.SendRequested)
MESSAGES_UPSERT = _spec("session.messages.upsert", p.MessagesUpsert)
MESSAGES_UPDATE = _spec("session.messages.update", p.MessagesUpdate)
HISTORY_SYNC = _spec("session.history.sync", p.HistorySync)
CONTACTS_UPSERT = _spec("session.contacts.upsert", p.ContactsUpsert)
PRESENCE_UPDATE = _spec("session.presence.update", p.PresenceUpdate)
GROUPS_UPSERT = _spec("session.groups.upsert", p.GroupsUpsert)
GROUP_PARTICIPANTS = _spec("session.groups.participants", p.GroupParticipants)
CALL_RECEIVED = _spec("session.call.received", p.CallReceived)
SETTINGS_UPDATED = _spec("session.settings.updated", p.SettingsUpdated)
POLL_VOTE = _spec("session.polls.vote", p.PollVote)
MESSAGES_EDIT = _spec("session.messages.edit", p.MessagesEdit)
MESSAGES_DELETE = _spec("session.messages.delete", p.MessagesDelete, 2, {1: _delete_v1_v2})
MESSAGES_REACTION = _spec("session.messages.reaction", p.MessagesReaction)
MESSAGES_MEDIA = _spec("session.messages.media", p.MessagesMedia,
                       description="Media bytes of messages are in object storage (or could not be fetched).")
COMMAND_SUCCEEDED = _spec("session.command.succeeded", p.CommandSucceeded, 2, {1: _succeeded_v1_v2},
                          description="A command's outcome. A pairing code is only on the secrets topic (v1 "
                                      "kept it in result.code).")
COMMAND_FAILED = _spec("session.command.failed", p.CommandFailed, 2, {1: _failed_v1_v2})

SESSION_SNAPSHOT = _spec("session.snapshot", p.SessionSnapshot,
                         description="Sent by the WebSocket gateway when a socket connects; never on Kafka.")

SESSION_EVENTS: dict[str, EventSpec[Any]] = {s.type: s for s in (
    SESSION_CREATED, QR_UPDATED, STATUS_CONNECTED, STATUS_DISCONNECTED, STATUS_LOGGED_OUT, SESSION_DELETED,
    SESSION_STARTED, SEND_REQUESTED, MESSAGES_UPSERT, MESSAGES_UPDATE, HISTORY_SYNC, CONTACTS_UPSERT,
    PRESENCE_UPDATE, GROUPS_UPSERT, GROUP_PARTICIPANTS, CALL_RECEIVED, SETTINGS_UPDATED, POLL_VOTE,
    MESSAGES_EDIT, MESSAGES_DELETE, MESSAGES_REACTION, MESSAGES_MEDIA, COMMAND_SUCCEEDED, COMMAND_FAILED,
)}
"""The session event topic's types (``session.snapshot`` is WebSocket-only and not among them)."""

CAMPAIGN_CREATED = _spec("campaign.created", cp.CampaignCreated)
CAMPAIGN_RECIPIENTS_ADDED = _spec("campaign.recipients.added", cp.RecipientsAdded)
CAMPAIGN_STATUS = _spec("campaign.status", cp.StatusChanged)
CAMPAIGN_TYPING = _spec("campaign.recipients.typing", cp.RecipientsTyping)
CAMPAIGN_DISPATCHED = _spec("campaign.recipients.dispatched", cp.RecipientsDispatched)
CAMPAIGN_UPDATED = _spec("campaign.recipients.updated", cp.RecipientsUpdated)
CAMPAIGN_RETRY_REQUESTED = _spec("campaign.retry_requested", cp.RetryRequested)
CAMPAIGN_PROGRESS = _spec("campaign.progress", cp.Progressed)
SUPPRESSION_ADDED = _spec("campaign.suppression.added", cp.SuppressionAdded,
                          description="Not an event of one campaign: a tenant-wide fact keyed by tenant.")

CAMPAIGN_EVENTS: dict[str, EventSpec[Any]] = {s.type: s for s in (
    CAMPAIGN_CREATED, CAMPAIGN_RECIPIENTS_ADDED, CAMPAIGN_STATUS, CAMPAIGN_TYPING, CAMPAIGN_DISPATCHED,
    CAMPAIGN_UPDATED, CAMPAIGN_RETRY_REQUESTED, CAMPAIGN_PROGRESS,
)}
"""The events of one campaign (``campaign.suppression.added`` shares the topic but is tenant-wide)."""

ALL_EVENTS: dict[str, EventSpec[Any]] = {**SESSION_EVENTS, **CAMPAIGN_EVENTS, SUPPRESSION_ADDED.type: SUPPRESSION_ADDED}


def upcast(type_: str, stored_version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored payload to its type's current version (unknown types pass unchanged)."""
    spec = ALL_EVENTS.get(type_)
    return payload if spec is None else spec.upcast(stored_version, payload)


def parse_as(type_: str, payload: Mapping[str, Any], model: builtins.type[P]) -> P:
    """``payload`` of an event of ``type_`` as its contract model (``Envelope.data`` / ``CampaignEnvelope.data``).

    Raises ``pydantic.ValidationError`` when the payload does not match, and ``TypeError`` when ``model`` is not
    the model of ``type_`` (reading an edit as an upsert is a bug).
    """
    spec = ALL_EVENTS.get(type_)
    if spec is not None and spec.payload is not model:
        raise TypeError(f"{type_} carries {spec.payload.__name__}, not {model.__name__}")
    return model.model_validate(payload)


def current_version(type_: str) -> int:
    spec = ALL_EVENTS.get(type_)
    return spec.version if spec else 1
