"""Wire payloads of every session event, with exactly the keys of the client's contract.

These models are the schema of what goes on the event topic and over the
WebSocket; ``schemas/`` is generated from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

PII: JsonDict = {"x-pii": True}
"""``json_schema_extra`` of a field holding personal data: encrypted per data subject on the topic
(:mod:`zapstream_contracts.pii`), ``"x-pii": true`` in ``schemas/``. A required one is typed
``str | SkipJsonSchema[None]``: always a string on the wire, ``None`` once its key was erased."""

MediaKind = Literal["image", "video", "audio", "document", "sticker"]
MessageStatus = Literal["pending", "server_ack", "delivered", "read", "played", "unknown"]
SessionStatus = Literal["created", "qr_pending", "connected", "disconnected", "logged_out", "deleted"]

STATUS_RANK: dict[str, int] = {
    "unknown": -1,
    "pending": 0,
    "server_ack": 1,
    "delivered": 2,
    "read": 3,
    "played": 4,
}
"""Receipt statuses only move forward: a late 'delivered' never overrides 'read'."""


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown keys ignored.

    A record written by a newer producer may carry optional fields this reader does not know yet
    (schemas/ promise only that fields are never removed or retyped without a new version).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class EventPayload(Wire):
    tenant_id: str
    # Never written by producers: a reader sets it when some personal field could not be decrypted because
    # its data subject was erased (crypto-shredding); those fields then read as null.
    erased: bool | SkipJsonSchema[None] = Field(
        default=None, exclude=True,
        description="Set by readers (never on the topic): personal fields of an erased subject read as null.")


class SessionView(Wire):
    """The session as the snapshot event and ``GET /sessions`` show it."""

    id: str
    tenant_id: str
    status: SessionStatus
    phone: str | None = Field(default=None, json_schema_extra=PII)
    qr: str | None = None
    qr_expires_at: str | None = None
    connected_at: str | None = None
    disconnected_at: str | None = None
    disconnected_reason: str | None = None
    created_at: str
    updated_at: str


class SessionSnapshot(EventPayload):
    session: SessionView | None


class SessionCreated(EventPayload):
    id: str
    status: SessionStatus
    created_at: str
    name: str | None = None


class QrUpdated(EventPayload):
    """v2: the session shows a QR until ``expiresAt``. The code itself is a short-lived secret: it is on the
    secrets topic (:class:`QrSecret`, kept an hour), never on the event log (v1 carried it as ``qr``)."""

    expires_at: str


class QrSecret(EventPayload):
    """``session.qr.updated`` with its code, as clients receive it (seed 001) and as the secrets topic keeps it."""

    qr: str
    expires_at: str


class StatusConnected(EventPayload):
    phone: str | SkipJsonSchema[None] = Field(json_schema_extra=PII)  # the linked account's number
    connected_at: str


class StatusDisconnected(EventPayload):
    reason: str
    disconnected_at: str
    # True when a client stopped the session with a reason of its own (the runner then stays
    # away until it is started). A plain stop says so with the reason "stopped" alone.
    stopped: bool | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_stopped(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Seed 001's clients expect exactly tenantId, reason and disconnectedAt.
        data: dict[str, Any] = handler(self)
        if data.get("stopped") is None:
            data.pop("stopped", None)
        return data


class StatusLoggedOut(EventPayload):
    reason: str
    logged_out_at: str


class SessionDeleted(EventPayload):
    deleted_at: str
    # True when the session's data must go too (``session.delete`` with ``purge``, and every session of a
    # deleted tenant): read models drop its rows. Absent on a plain delete, so that record is unchanged.
    purged: bool | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_purged(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("purged") is None:
            data.pop("purged", None)
        return data


class Location(Wire):
    """A pin, optionally named (a shop) with its address."""

    kind: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, max_length=1000, json_schema_extra=PII)
    address: str | None = Field(default=None, max_length=1000, json_schema_extra=PII)
    url: str | None = Field(default=None, max_length=2000)


class ContactCard(Wire):
    """A contact card: its display name and the vCard text (``BEGIN:VCARD`` … ``END:VCARD``)."""

    kind: Literal["contact"] = "contact"
    display_name: str = Field(min_length=1, max_length=1000)
    vcard: str = Field(min_length=1, max_length=65536)

    @model_validator(mode="after")
    def _is_vcard(self) -> ContactCard:
        text = self.vcard.strip().upper()
        if not (text.startswith("BEGIN:VCARD") and text.endswith("END:VCARD")):
            raise ValueError("vcard must be a vCard (BEGIN:VCARD ... END:VCARD)")
        return self


class Poll(Wire):
    """A poll: its question, 2 to 12 distinct options, and how many a voter may pick."""

    kind: Literal["poll"] = "poll"
    name: str = Field(min_length=1, max_length=255)
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=2, max_length=12)
    selectable_count: int = Field(default=1, ge=0, le=12)  # 0: any number

    @model_validator(mode="after")
    def _distinct(self) -> Poll:
        if len(set(self.options)) != len(self.options):
            raise ValueError("poll options must be distinct")
        if self.selectable_count > len(self.options):
            raise ValueError("selectableCount cannot exceed the number of options")
        return self


RichContent = Annotated[Location | ContactCard | Poll, Field(discriminator="kind")]
"""A message that is neither text nor media; ``kind`` says which."""

RICH_MESSAGE_TYPES: dict[str, str] = {
    "location": "locationMessage",
    "contact": "contactMessage",
    "poll": "pollCreationMessage",
}
"""WhatsApp's message type for each rich kind (the ``type`` of a message summary)."""


class MessageSummary(Wire):
    id: str
    remote_jid: str
    from_me: bool
    timestamp: int
    type: str = "conversation"
    text: str | None = Field(default=None, json_schema_extra=PII)
    participant: str | None = None
    reply_to_message_id: str | None = None
    forwarded: bool | None = None
    push_name: str | None = Field(default=None, json_schema_extra=PII)
    status: MessageStatus | None = None
    # A location, contact card or poll (``type`` names it); absent for text and media.
    rich: RichContent | None = None
    # JIDs @-mentioned in the text (groups); absent when none.
    mentions: list[str] | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_rich(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Text and media items keep exactly seed 001's keys.
        data: dict[str, Any] = handler(self)
        for key in ("rich", "mentions"):
            if not data.get(key):
                data.pop(key, None)
        return data


class MessagesUpsert(EventPayload):
    upsert_type: Literal["notify", "append"]
    request_id: str | None = None
    messages_count: int
    messages: list[MessageSummary]


MEDIA_MESSAGE_TYPES: dict[str, str] = {
    "image": "imageMessage",
    "video": "videoMessage",
    "audio": "audioMessage",
    "document": "documentMessage",
    "sticker": "stickerMessage",
}
"""WhatsApp's message type for each media kind (the ``type`` of a message summary)."""


class MediaRef(Wire):
    """A stored file to send: its object key (in the tenant's prefix) and what it is."""

    kind: MediaKind
    key: str = Field(min_length=1, max_length=1024)
    mime: str = Field(min_length=1, max_length=200)
    size: int = Field(ge=1)
    file_name: str | None = Field(default=None, max_length=255)
    ptt: bool = False  # audio only: send as a voice note (converted to Opus/OGG first)
    width: int | None = None
    height: int | None = None
    duration: int | None = None  # seconds
    media_id: str | None = None  # the upload it came from (POST /media), when there was one


class SendRequested(EventPayload):
    """The runner's durable intent to send, recorded before WhatsApp is called."""

    command_id: str
    message_id: str
    to: str
    text: str | SkipJsonSchema[None] = Field(json_schema_extra=PII)
    reply_to_message_id: str | None = None
    forwarded: bool = False
    media: MediaRef | None = None  # ``text`` is then the caption ("" for none)
    rich: RichContent | None = None  # a location, contact card or poll (``text`` is "")
    mentions: list[str] | None = None  # JIDs @-mentioned in the text
    # Sends of a campaign wait for a reconnecting number with no deadline (others give up after one).
    campaign_id: str | None = None


class StatusUpdate(Wire):
    message_id: str
    remote_jid: str | None = None
    status: MessageStatus
    status_at: int


class MessagesUpdate(EventPayload):
    updates_count: int
    updates: list[StatusUpdate]
    source: Literal["receipt", "send", "recovery", "read"] = "receipt"


class MessageEdit(Wire):
    message_id: str
    chat_jid: str | None = None
    type: str = "conversation"
    text: str | SkipJsonSchema[None] = Field(json_schema_extra=PII)
    edited_at: int
    from_me: bool | None = None


class MessagesEdit(EventPayload):
    edits_count: int
    edits: list[MessageEdit]


class MessageDelete(Wire):
    message_id: str
    deleted_at: int
    chat_jid: str | None = None
    from_me: bool | None = None


class MessagesDelete(EventPayload):
    scope: Literal["message", "chat"]
    chat_jid: str | None = None
    deletes_count: int
    deletes: list[MessageDelete]
    # Chat scope: when the chat was cleared, RFC 3339 UTC with milliseconds (v2; v1 wrote epoch seconds, and
    # the upcaster converts). The items' ``deletedAt`` stays in epoch seconds, as seed 001 fixes it.
    deleted_at: str | None = None


class ReactionEntry(Wire):
    message_id: str
    chat_jid: str
    actor_jid: str
    from_me: bool
    emoji: str | None
    reacted_at: int
    removed: bool


class MessagesReaction(EventPayload):
    reactions_count: int
    reactions: list[ReactionEntry]
    source: str = "event"


class Contact(Wire):
    id: str
    name: str | None = Field(default=None, json_schema_extra=PII)
    notify: str | None = Field(default=None, json_schema_extra=PII)
    img_url: str | None = None


class HistorySync(EventPayload):
    sync_type: str
    progress: int
    is_latest: bool
    chats_count: int
    contacts_count: int
    messages_count: int
    messages_truncated: bool
    messages: list[MessageSummary]


class ContactsUpsert(EventPayload):
    contacts_count: int
    contacts_truncated: bool = False
    contacts: list[Contact]
    source: str = "event"


GroupAction = Literal["add", "remove", "promote", "demote"]


class GroupParticipant(Wire):
    id: str
    admin: Literal["admin", "superadmin"] | None = None


class GroupInfo(Wire):
    """A group as WhatsApp describes it (Baileys' ``GroupMetadata`` keys)."""

    id: str
    subject: str
    owner: str | None = None
    creation: int | None = None  # epoch seconds
    desc: str | None = None
    announce: bool = False  # only admins send
    restrict: bool = False  # only admins edit the group's info
    size: int
    participants: list[GroupParticipant]


class GroupsUpsert(EventPayload):
    """Groups learned or changed: created by us, listed, or changed by someone."""

    groups_count: int
    groups: list[GroupInfo]


class GroupParticipants(EventPayload):
    """Participants added, removed, promoted or demoted in a group (by us or by an admin elsewhere)."""

    id: str  # the group's JID
    action: GroupAction | Literal["leave"]
    participants: list[str]
    author: str | None = None


class PollOptionCount(Wire):
    name: str
    votes: int


class PollVote(EventPayload):
    """A vote on a poll (a voter's whole current choice: re-voting replaces it, ``[]`` withdraws it),
    with the poll's running tally."""

    poll_id: str
    chat_jid: str
    voter: str
    selected_options: list[str]
    voted_at: int
    tally: list[PollOptionCount]


class CallReceived(EventPayload):
    """Someone called the account: ``status`` is ``offer`` (left ringing on the phone) or ``rejected``
    (the session's setting rejected it)."""

    id: str
    from_: str = Field(alias="from")
    timestamp: int
    is_video: bool = False
    is_group: bool = False
    status: Literal["offer", "rejected"]


class SettingsUpdated(EventPayload):
    """The session's call handling: reject calls automatically, optionally answering with a text."""

    reject_calls: bool
    call_reply_text: str | None = None


class PresenceEntry(Wire):
    jid: str
    presence: Literal["available", "unavailable", "composing", "paused", "recording"]
    last_seen: int | None = None


class PresenceUpdate(EventPayload):
    chat_jid: str
    updates_count: int
    updates: list[PresenceEntry]


class MediaEntry(Wire):
    """One message's media once its bytes are in object storage (seed 001's keys, plus extras)."""

    message_id: str
    chat_jid: str
    kind: MediaKind
    url: str | None  # None only when the bytes could not be fetched (see ``error``)
    mime: str
    size: int | None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    file_name: str | None = None
    ptt: bool = False
    key: str | None = None  # object key, so readers can sign a fresh URL
    error: str | None = None


class MessagesMedia(EventPayload):
    media_count: int
    media: list[MediaEntry]
    source: str = "event"


class CommandSucceeded(EventPayload):
    command_id: str
    command_type: str
    result: dict[str, str] = Field(default_factory=dict)


RETRYABLE_CODES = frozenset(
    {"not_connected", "outcome_unknown", "whatsapp_error", "send_failed", "read_failed", "media_unavailable"}
)


class CommandFailed(EventPayload):
    command_id: str
    command_type: str
    code: str
    reason: str
    retryable: bool  # v2: may the client retry the same command as it is?
