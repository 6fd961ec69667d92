"""Seed 003's bodies and its ``{success, message, data}`` answers (errors stay problem+json, with
``success: false`` and ``error`` added as extension members so its clients find what they read)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from command_api.agents.schemas import AgentAccepted
from command_api.chats.schemas import ChatList, MessagePage
from command_api.identity.schemas import Accepted, TokenAnswer, UserView
from command_api.shared.bodies import Body, Jid, View

T = TypeVar("T")


class Answer(BaseModel, Generic[T]):
    """Seed 003's answer shape."""

    success: bool = True
    message: str
    data: T


class EmployeeList(View):
    employees: list[UserView]


class SessionInit(View):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901", "status": "initializing",
        "commandId": "0f8e0c1e-3c2b-4a59-9a55-63d8a0b1c2d3"}]})

    session_id: str
    status: str
    command_id: str | None = None


class PermissionBody(Body):
    """The employee (a station: an agent of the tenant) and the chat it may see and answer."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"employeeId": "2f1d3c4b-5a69-4877-8695-a4b3c2d1e0f9", "chatId": "51988887777@c.us"}]})

    employee_id: str = Field(min_length=1, max_length=64,
                             validation_alias=AliasChoices("employeeId", "userId", "stationId", "employee_id"))
    chat_id: Jid = Field(validation_alias=AliasChoices("chatId", "chatJid", "chat_id"))


class Permission(View):
    employee_id: str
    chat_id: str


class ChatMessageBody(Body):
    """Seed 003 sends text as ``message`` (``text`` and ``content`` are read too)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "Hola, ¿en qué te ayudo?"}]})

    message: str | None = Field(default=None, min_length=1, max_length=65536,
                                validation_alias=AliasChoices("message", "text", "content", "body"))

    @model_validator(mode="after")
    def _required(self) -> ChatMessageBody:
        if self.message is None:
            raise ValueError("message is required")
        return self


class Sent(View):
    command_id: str
    session_id: str
    message_id: str | None = None
    status: str = "accepted"


class MessageMedia(View):
    message_id: str
    chat_id: str
    kind: str | None = None
    mimetype: str | None = None
    file_name: str | None = None
    size: int | None = None
    url: str | None = None


class ProfilePhoto(View):
    chat_id: str
    url: str | None


RegisterAnswer = Answer[Accepted]
LoginAnswer = Answer[TokenAnswer]
StationAnswer = Answer[AgentAccepted]
EmployeesAnswer = Answer[EmployeeList]
InitAnswer = Answer[SessionInit]
PermissionAnswer = Answer[Permission]
ChatsAnswer = Answer[ChatList]
MessagesAnswer = Answer[MessagePage]
SentAnswer = Answer[Sent]
MediaAnswer = Answer[MessageMedia]
PhotoAnswer = Answer[ProfilePhoto]
LogoutAnswer = Answer[dict[str, Any]]
