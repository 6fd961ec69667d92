"""Commands: what a client asks a session to do. Imperative names, one Kafka record each."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, TypeAdapter

from .payloads import Wire


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
    TYPE: ClassVar[str] = "session.stop"
    type: Literal["session.stop"] = "session.stop"


class DeleteSession(Command):
    TYPE: ClassVar[str] = "session.delete"
    type: Literal["session.delete"] = "session.delete"


class SendMessage(Command):
    TYPE: ClassVar[str] = "session.send_message"
    type: Literal["session.send_message"] = "session.send_message"
    to: str
    content: str = Field(min_length=1, max_length=65536)
    reply_to_message_id: str | None = None


class ReadMessages(Command):
    TYPE: ClassVar[str] = "session.read_messages"
    type: Literal["session.read_messages"] = "session.read_messages"
    chat_jid: str
    message_ids: list[str] = Field(min_length=1, max_length=1000)


AnyCommand = Annotated[
    CreateSession | StartSession | StopSession | DeleteSession | SendMessage | ReadMessages,
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
)


def parse_command(raw: bytes) -> AnyCommand:
    """Decode one command record; raises ``pydantic.ValidationError`` on bad input."""
    return COMMAND_ADAPTER.validate_json(raw)
