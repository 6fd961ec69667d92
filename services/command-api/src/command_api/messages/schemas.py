"""Request and response models of the messages slice (sending, editing, deleting, reacting)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from command_api.shared.bodies import Body, CommandAccepted, Jid, MessageId, SessionRef
from zapstream_contracts.payloads import ContactCard, Location, Poll

Kind = Literal["image", "video", "audio", "document", "sticker"]


class MediaSpec(Body):
    """One file to send: ``mediaId`` (from ``POST /media``), a ``url`` that route returned, or ``base64``."""

    media_id: str | None = Field(default=None, max_length=64)
    url: str | None = Field(default=None, max_length=8192)
    base64: str | None = Field(default=None, min_length=1, description="Plain base64 or a data: URI.")
    kind: Kind | None = None
    mime: str | None = Field(default=None, max_length=200)
    file_name: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _one_source(self) -> MediaSpec:
        if sum(x is not None for x in (self.media_id, self.url, self.base64)) != 1:
            raise ValueError("media needs exactly one of mediaId, url or base64")
        if self.base64 is not None and self.kind is None:
            raise ValueError("kind is required with base64 media")
        return self


class ChatSendBody(Body):
    """Text, a reply (``replyToMessageId``), a forward (``forwardMessageId``) or media (``media``).

    ``media`` is one file or a list of images (an album); ``caption`` (or ``content``) goes
    with the first; ``ptt: true`` sends an audio as a voice note. ``location``, ``contact`` (a vCard)
    and ``poll`` each send one message of that kind, alone.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"content": "Hola!"},
        {"content": "Respuesta", "replyToMessageId": "3EB0C0FFEE"},
        {"forwardMessageId": "3EB0C0FFEE"},
        {"media": {"kind": "audio", "mediaId": "0b6f7f2e-2a55-4d43-8f0e-3c3d2b1a0f99"}, "ptt": True},
        {"location": {"latitude": -12.0464, "longitude": -77.0428, "name": "Tienda Lima",
                      "address": "Av. Larco 123, Miraflores"}},
        {"contact": {"displayName": "Soporte", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Soporte\n"
                     "TEL;type=CELL;waid=51988887777:+51 988 887 777\nEND:VCARD"}},
        {"poll": {"name": "¿Qué horario prefieres?", "options": ["Mañana", "Tarde"], "selectableCount": 1}},
        {"content": "Hola @51988887777, ¿confirmas el pedido?", "mentions": ["51988887777"]},
    ]})

    content: str | None = Field(default=None, min_length=1, max_length=65536)
    reply_to_message_id: MessageId | None = None
    forward_message_id: MessageId | None = None
    session_id: SessionRef = None
    media: MediaSpec | list[MediaSpec] | None = None
    caption: str | None = Field(default=None, max_length=4096)
    ptt: bool = False
    location: Location | None = None
    contact: ContactCard | None = None
    poll: Poll | None = None
    # @-mentions in a group text: the JIDs (or phones) whose ``@<digits>`` the text contains.
    mentions: list[Jid] | None = Field(default=None, max_length=1024)

    @property
    def rich(self) -> Location | ContactCard | Poll | None:
        return self.location or self.contact or self.poll

    @model_validator(mode="after")
    def _content_or_forward(self) -> ChatSendBody:
        rich = [x for x in (self.location, self.contact, self.poll) if x is not None]
        if rich:
            if len(rich) > 1 or self.content is not None or self.media is not None \
                    or self.forward_message_id is not None or self.caption is not None:
                raise ValueError("location, contact and poll go alone (one of them, no content, media or forward)")
            return self
        if self.content is None and self.forward_message_id is None and self.media is None:
            raise ValueError("one of content, media, forwardMessageId, location, contact or poll is required")
        if self.media is not None and self.forward_message_id is not None:
            raise ValueError("media cannot be combined with forwardMessageId")
        if self.media is None and (self.caption is not None or self.ptt):
            raise ValueError("caption and ptt need media")
        if isinstance(self.media, list) and not self.media:
            raise ValueError("media must not be an empty list")
        if self.mentions and (self.content is None or self.media is not None):
            raise ValueError("mentions go with a text (content)")
        return self


class SendBody(ChatSendBody):
    """Seed 000's ``POST /sessions/{id}/messages``: the same as a chat send, with the recipient in ``to``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"to": "51988887777", "content": "Hola!"},
        {"to": "51988887777@s.whatsapp.net", "content": "Respuesta", "replyToMessageId": "3EB0C0FFEE"},
        {"to": "51988887777", "forwardMessageId": "3EB0C0FFEE"},
        {"to": "51988887777", "media": {"kind": "image", "mediaId": "0b6f7f2e-2a55-4d43-8f0e-3c3d2b1a0f99"},
         "caption": "hola"},
    ]})

    to: Jid


class SendPdfBody(Body):
    """Seed 002's ``POST /api/send-pdf``; ``sessionId`` is a session id or a declared session's name."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"sessionId": "tienda_lima", "to": "51988887777", "pdfBase64": "JVBERi0xLjQK...",
         "fileName": "Comprobante.pdf"}]})

    session_id: str = Field(min_length=1, max_length=200)
    to: Jid
    pdf_base64: str = Field(min_length=1)
    file_name: str = Field(default="Comprobante.pdf", min_length=1, max_length=255)
    caption: str | None = Field(default=None, max_length=4096)


class EditBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "Texto editado"}]})

    content: str = Field(min_length=1, max_length=65536)
    session_id: SessionRef = None


class ReactBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"emoji": "👍"}, {"emoji": None}]})

    emoji: str | None = Field(max_length=32, description="An emoji, or null to remove your reaction.")
    session_id: SessionRef = None

    @field_validator("emoji")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("emoji must be a non-empty string, or null to remove the reaction")
        return value


class MessageAccepted(CommandAccepted):
    """A send was accepted; ``messageId`` is the WhatsApp id the message will have."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "commandId": "0f8e0c1e-3c2b-4a59-9a55-63d8a0b1c2d3", "status": "accepted",
        "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901", "messageId": "3EB0A1B2C3D4E5F6"}]})

    message_id: str
    command_ids: list[str] | None = Field(default=None, description="An album: one command per image.")
    message_ids: list[str] | None = Field(default=None, description="An album: one message per image.")


class PdfAccepted(MessageAccepted):
    """Seed 002's answer: ``{success: true, message, ...}``."""

    success: bool = True
    message: str = "queued for sending"
