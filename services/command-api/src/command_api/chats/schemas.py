"""Request and response models of the chats slice (read models, read receipts, presence)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from command_api.shared.bodies import Body, MessageId, SessionRef, View

DEPRECATED: JsonDict = {"deprecated": True}


class ReadBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"messageIds": ["3EB0C0FFEE"]}]})

    message_ids: list[MessageId] = Field(min_length=1, max_length=1000)
    session_id: SessionRef = None


class PresenceBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"presence": "composing"}]})

    presence: Literal["composing", "recording", "paused"]
    session_id: SessionRef = None


class SessionOnlyBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{}]})

    session_id: SessionRef = None


class LastMessage(View):
    id: str | None = None
    text: str | None = None
    timestamp: int


class ChatView(View):
    jid: str
    session_id: str
    unread_count: int
    last_message: LastMessage


class ChatList(View):
    """The chats of one session, most recent first; ``sessionId`` is null (and the list empty) without one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901", "chats": [{
            "jid": "51999999999@s.whatsapp.net", "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901",
            "unreadCount": 1, "lastMessage": {"id": "msg-2", "text": "Como estas?", "timestamp": 1767220050}}]}]})

    session_id: str | None
    chats: list[ChatView]


class ReactionView(View):
    emoji: str
    count: int
    actors: list[str]


class MediaView(View):
    kind: str | None = None
    url: str | None = None
    mime: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    file_name: str | None = None
    ptt: bool = False
    error: str | None = None


class MessageView(View):
    """A message as seed 001 shows it: ``replyTo`` and ``forward`` when they apply."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "msg-2", "chatJid": "51999999999@s.whatsapp.net", "fromMe": False, "timestamp": 1767220050,
        "type": "conversation", "text": "Hola", "participant": None, "pushName": "Ana", "replyTo": None,
        "forward": False, "status": None, "statusAt": None, "isEdited": False, "editedAt": None,
        "isDeleted": False, "deletedAt": None, "reactions": [
            {"emoji": "👍", "count": 2, "actors": ["51999999999@s.whatsapp.net", "51888888888@s.whatsapp.net"]}],
        "media": None, "replyToMessageId": None, "forwarded": False}]})

    id: str
    chat_jid: str
    from_me: bool
    timestamp: int
    type: str
    text: str | None = None
    participant: str | None = None
    push_name: str | None = None
    reply_to: str | None = Field(default=None, description="The id of the message this one replies to.")
    forward: bool = Field(default=False, description="Whether the message was forwarded.")
    status: str | None = None
    status_at: int | None = None
    is_edited: bool = False
    edited_at: int | None = None
    is_deleted: bool = False
    deleted_at: int | None = None
    reactions: list[ReactionView] = Field(default_factory=list)
    media: MediaView | None = None
    rich: dict[str, Any] | None = Field(default=None, description="A location, contact card or poll (`kind`).")
    poll_tally: list[dict[str, Any]] | None = Field(default=None, description="A poll's votes per option.")
    reply_to_message_id: str | None = Field(
        default=None, json_schema_extra=DEPRECATED,
        description="Deprecated: use `replyTo`. Kept for one minor version.")
    forwarded: bool = Field(default=False, json_schema_extra=DEPRECATED,
                            description="Deprecated: use `forward`. Kept for one minor version.")


class MessagePage(View):
    session_id: str | None
    chat_jid: str
    messages: list[MessageView]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next (older) page.")


class ContactView(View):
    id: str
    name: str | None = None
    notify: str | None = None
    img_url: str | None = None


class ContactList(View):
    session_id: str | None
    contacts: list[ContactView]
