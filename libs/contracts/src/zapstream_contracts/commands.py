"""Commands: what a client asks a session to do. Imperative names, one Kafka record each."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, TypeAdapter, model_validator

from .payloads import MediaRef, RichContent, Wire


class Command(Wire):
    """Fields shared by every command; ``type`` is the wire name."""

    TYPE: ClassVar[str]
    command_id: str
    session_id: str
    tenant_id: str
    issued_at: str
    traceparent: str | None = None


class CreateSession(Command):
    TYPE: ClassVar[str] = "session.create"
    type: Literal["session.create"] = "session.create"
    name: str | None = None


class StartSession(Command):
    TYPE: ClassVar[str] = "session.start"
    type: Literal["session.start"] = "session.start"


class StopSession(Command):
    """Stop the connection. ``reason`` is kept as given; ``logout`` also unlinks the device."""

    TYPE: ClassVar[str] = "session.stop"
    type: Literal["session.stop"] = "session.stop"
    reason: str | None = Field(default=None, max_length=200)  # as the client gave it, e.g. "logout"


class DeleteSession(Command):
    """Unlink and delete the session. ``purge`` also removes its data from the read models (the session's
    ``session.deleted`` says ``purged: true``); deleting a tenant purges every session of it."""

    TYPE: ClassVar[str] = "session.delete"
    type: Literal["session.delete"] = "session.delete"
    purge: bool = False


class SendMessage(Command):
    """Text, one media file with an optional caption (``content``), or a location, contact card or poll
    (``rich``)."""

    TYPE: ClassVar[str] = "session.send_message"
    type: Literal["session.send_message"] = "session.send_message"
    to: str
    content: str | None = Field(default=None, max_length=65536)
    reply_to_message_id: str | None = None
    forwarded: bool = False
    media: MediaRef | None = None
    rich: RichContent | None = None
    # JIDs (or phones) @-mentioned in the text, for group chats; normalised by the decision.
    mentions: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(default=None, max_length=1024)
    # Set on a campaign's sends: the outcome is routed back to the campaign, and the runner holds the
    # send for a reconnecting number with no deadline.
    campaign_id: str | None = None

    @model_validator(mode="after")
    def _text_or_media(self) -> SendMessage:
        if self.rich is not None:
            if self.media is not None or self.content:
                raise ValueError("a location, contact card or poll goes alone (no content or media)")
            return self
        if self.media is None and not self.content:
            raise ValueError("a message needs content or media")
        return self


class ReadMessages(Command):
    TYPE: ClassVar[str] = "session.read_messages"
    type: Literal["session.read_messages"] = "session.read_messages"
    chat_jid: str
    message_ids: list[str] = Field(min_length=1, max_length=1000)


class EditMessage(Command):
    TYPE: ClassVar[str] = "session.edit_message"
    type: Literal["session.edit_message"] = "session.edit_message"
    chat_jid: str
    message_id: str
    content: str = Field(min_length=1, max_length=65536)


class DeleteMessage(Command):
    TYPE: ClassVar[str] = "session.delete_message"
    type: Literal["session.delete_message"] = "session.delete_message"
    chat_jid: str
    message_id: str


class ReactToMessage(Command):
    TYPE: ClassVar[str] = "session.react_message"
    type: Literal["session.react_message"] = "session.react_message"
    chat_jid: str
    message_id: str
    emoji: str | None = Field(default=None, max_length=32)


class SubscribePresence(Command):
    TYPE: ClassVar[str] = "session.subscribe_presence"
    type: Literal["session.subscribe_presence"] = "session.subscribe_presence"
    jid: str


class SendPresence(Command):
    TYPE: ClassVar[str] = "session.send_presence"
    type: Literal["session.send_presence"] = "session.send_presence"
    chat_jid: str
    presence: Literal["composing", "recording", "paused"]


class RequestPairCode(Command):
    """Link by typing a code on the phone instead of scanning a QR."""

    TYPE: ClassVar[str] = "session.request_pair_code"
    type: Literal["session.request_pair_code"] = "session.request_pair_code"
    phone: str


Participants = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                        Field(min_length=1, max_length=1024)]


class CreateGroup(Command):
    """Create a group with us as its owner and ``participants`` (phones or JIDs) in it."""

    TYPE: ClassVar[str] = "session.group.create"
    type: Literal["session.group.create"] = "session.group.create"
    subject: str = Field(min_length=1, max_length=100)
    participants: Participants


class UpdateGroupParticipants(Command):
    TYPE: ClassVar[str] = "session.group.participants"
    type: Literal["session.group.participants"] = "session.group.participants"
    group_jid: str = Field(min_length=1, max_length=200)
    action: Literal["add", "remove", "promote", "demote"]
    participants: Participants


class LeaveGroup(Command):
    TYPE: ClassVar[str] = "session.group.leave"
    type: Literal["session.group.leave"] = "session.group.leave"
    group_jid: str = Field(min_length=1, max_length=200)


class GetGroupInviteLink(Command):
    """The group's invite link (``reset`` revokes the old one first); it comes back as the command's result."""

    TYPE: ClassVar[str] = "session.group.invite_link"
    type: Literal["session.group.invite_link"] = "session.group.invite_link"
    group_jid: str = Field(min_length=1, max_length=200)
    reset: bool = False


class SyncGroups(Command):
    """Fetch every group we are in, with metadata: recorded as ``session.groups.upsert``."""

    TYPE: ClassVar[str] = "session.group.sync"
    type: Literal["session.group.sync"] = "session.group.sync"


class ConfigureCalls(Command):
    """Reject incoming calls automatically (``rejectCalls``), answering each with ``replyText`` when given."""

    TYPE: ClassVar[str] = "session.configure_calls"
    type: Literal["session.configure_calls"] = "session.configure_calls"
    reject_calls: bool
    reply_text: str | None = Field(default=None, min_length=1, max_length=4096)


class FetchProfilePhoto(Command):
    """Fetch a contact's or group's profile photo into the tenant's storage at ``key`` (the API's cache key)."""

    TYPE: ClassVar[str] = "session.profile_photo.fetch"
    type: Literal["session.profile_photo.fetch"] = "session.profile_photo.fetch"
    jid: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=1024)


AnyCommand = Annotated[
    CreateSession
    | StartSession
    | StopSession
    | DeleteSession
    | SendMessage
    | ReadMessages
    | EditMessage
    | DeleteMessage
    | ReactToMessage
    | SubscribePresence
    | SendPresence
    | RequestPairCode
    | CreateGroup
    | UpdateGroupParticipants
    | LeaveGroup
    | GetGroupInviteLink
    | SyncGroups
    | ConfigureCalls
    | FetchProfilePhoto,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)
COMMAND_TYPES: tuple[type[Command], ...] = (
    CreateSession,
    StartSession,
    StopSession,
    DeleteSession,
    SendMessage,
    ReadMessages,
    EditMessage,
    DeleteMessage,
    ReactToMessage,
    SubscribePresence,
    SendPresence,
    RequestPairCode,
    CreateGroup,
    UpdateGroupParticipants,
    LeaveGroup,
    GetGroupInviteLink,
    SyncGroups,
    ConfigureCalls,
    FetchProfilePhoto,
)


def parse_command(raw: bytes) -> AnyCommand:
    """Decode one command record; raises ``pydantic.ValidationError`` on bad input."""
    return COMMAND_ADAPTER.validate_json(raw)
