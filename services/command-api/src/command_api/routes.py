"""HTTP handlers: parse, call the application layer, map errors. Nothing else.

(No ``from __future__ import annotations`` here: FastAPI resolves the
dependency aliases defined inside :func:`build_router` at runtime.)
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from command_api.application import (
    CommandBus,
    Idempotency,
    IdempotencyConflict,
    NotFound,
    Queries,
    decode_cursor,
)
from command_api.media_library import PLAYABLE_AUDIO, MediaLibrary
from command_api.permissions import Permissions
from command_api.problems import Problem, parse_body
from zapstream_domain import commands as c
from zapstream_domain import payloads as p
from zapstream_domain.decisions import message_id_for
from zapstream_domain.errors import InvalidJid
from zapstream_domain.jids import normalize_jid, normalize_phone
from zapstream_platform.http import JsonResponse
from zapstream_platform.tokens import Principal

MessageId = Annotated[str, Field(min_length=1, max_length=200)]
IDEMPOTENT_COMMANDS = uuid.UUID("6f1c2d3e-8a7b-4c5d-9e0f-1a2b3c4d5e6f")  # namespace of key-derived command ids


def _checked(normalize: Callable[[str], str]) -> Callable[[str], str]:
    """A normaliser as a pydantic validator: its InvalidJid becomes a validation error (422)."""

    def check(value: str) -> str:
        try:
            return normalize(value)
        except InvalidJid as exc:
            raise ValueError(str(exc)) from exc

    return check


Jid = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_checked(normalize_jid))]
Phone = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_checked(normalize_phone))]
SessionRef = Annotated[str | None, Field(max_length=64)]  # a session id; the tenant's latest when absent


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class CreateSessionBody(Body):
    name: str | None = Field(default=None, max_length=200)


Kind = Literal["image", "video", "audio", "document", "sticker"]


class MediaSpec(Body):
    """One file to send: ``mediaId`` (from ``POST /media``), a ``url`` that route returned, or ``base64``."""

    media_id: str | None = Field(default=None, max_length=64)
    url: str | None = Field(default=None, max_length=8192)
    base64: str | None = Field(default=None, min_length=1)
    kind: Kind | None = None
    mime: str | None = Field(default=None, max_length=200)
    file_name: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _one_source(self) -> "MediaSpec":
        if sum(x is not None for x in (self.media_id, self.url, self.base64)) != 1:
            raise ValueError("media needs exactly one of mediaId, url or base64")
        if self.base64 is not None and self.kind is None:
            raise ValueError("kind is required with base64 media")
        return self


class ChatSendBody(Body):
    """Text, a reply (``replyToMessageId``), a forward (``forwardMessageId``) or media (``media``).

    ``media`` is one file or a list of images (an album); ``caption`` (or ``content``) goes
    with the first; ``ptt: true`` sends an audio as a voice note.
    """

    content: str | None = Field(default=None, min_length=1, max_length=65536)
    reply_to_message_id: MessageId | None = None
    forward_message_id: MessageId | None = None
    session_id: SessionRef = None
    media: MediaSpec | list[MediaSpec] | None = None
    caption: str | None = Field(default=None, max_length=4096)
    ptt: bool = False

    @model_validator(mode="after")
    def _content_or_forward(self) -> "ChatSendBody":
        if self.content is None and self.forward_message_id is None and self.media is None:
            raise ValueError("one of content, media or forwardMessageId is required")
        if self.media is not None and self.forward_message_id is not None:
            raise ValueError("media cannot be combined with forwardMessageId")
        if self.media is None and (self.caption is not None or self.ptt):
            raise ValueError("caption and ptt need media")
        if isinstance(self.media, list) and not self.media:
            raise ValueError("media must not be an empty list")
        return self


class SendPdfBody(Body):
    """Seed 002's ``POST /api/send-pdf``; ``sessionId`` is a session id or a declared session's name."""

    session_id: str = Field(min_length=1, max_length=200)
    to: Jid
    pdf_base64: str = Field(min_length=1)
    file_name: str = Field(default="Comprobante.pdf", min_length=1, max_length=255)
    caption: str | None = Field(default=None, max_length=4096)


class SendBody(ChatSendBody):
    to: Jid


class ReadBody(Body):
    message_ids: list[MessageId] = Field(min_length=1, max_length=1000)
    session_id: SessionRef = None


class EditBody(Body):
    content: str = Field(min_length=1, max_length=65536)
    session_id: SessionRef = None


class ReactBody(Body):
    emoji: str | None = Field(max_length=32)
    session_id: SessionRef = None

    @field_validator("emoji")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("emoji must be a non-empty string, or null to remove the reaction")
        return value


class PresenceBody(Body):
    presence: Literal["composing", "recording", "paused"]
    session_id: SessionRef = None


class PairCodeBody(Body):
    phone: Phone


class SessionOnlyBody(Body):
    session_id: SessionRef = None


def _jid_or_422(raw: str) -> str:
    try:
        return normalize_jid(raw)
    except InvalidJid as exc:
        raise Problem(422, str(exc)) from exc


_parse = parse_body


def build_router(principal: Any, perms: Permissions, bus: CommandBus, queries: Queries,
                 idempotency: Idempotency, library: MediaLibrary) -> APIRouter:
    """``principal`` is the dependency that authenticates the caller (access token or API key)."""
    media_body_max = library.settings.base64_body_max_bytes

    Who = Annotated[Principal, Depends(principal)]
    SessionQuery = Annotated[str | None, Query(alias="sessionId", max_length=64)]

    async def owned(who: Principal, session_id: str) -> str:
        return await perms.owned_session(who, bus, session_id)

    async def session_for(who: Principal, session_id: str | None) -> str:
        if session_id:
            return await owned(who, session_id)
        if who.session_ids is not None:
            sid = await perms.latest_in_scope(who)
            if sid is None:
                raise Problem(404, "tenant has no session")
            return sid
        try:
            return await bus.latest_session(who.tenant_id)
        except NotFound as exc:
            raise Problem(404, "tenant has no session") from exc

    async def idempotent(
        request: Request, who: Principal, produce: Callable[[str | None], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``produce(seed)`` once per ``Idempotency-Key``; returns (the 202 body, replayed).

        ``seed`` (None without a key) names this request: command ids derived from it make a retry
        that re-publishes after a half-failed attempt recognisable to the runner, so nothing goes twice.
        """
        key = request.headers.get("idempotency-key")
        if key is None:
            return await produce(None), False
        if not 1 <= len(key) <= 200:
            raise Problem(422, "Idempotency-Key must be 1 to 200 characters")
        fingerprint = Idempotency.fingerprint(request.method, request.url.path, await request.body())
        seed = f"{who.tenant_id}\0{key}\0{fingerprint.hex()}"
        try:
            return await idempotency.run(who.tenant_id, key, fingerprint, lambda: produce(seed))
        except IdempotencyConflict as exc:
            raise Problem(exc.status, exc.detail) from exc

    async def publish(request: Request, who: Principal, cls: type[c.Command], session_id: str,
                      seed: str | None, index: int = 0, **fields: Any) -> dict[str, Any]:
        command_id = str(uuid.uuid5(IDEMPOTENT_COMMANDS, f"{seed}\0{index}")) if seed else None
        command_id = await bus.send(cls, who.tenant_id, session_id, request.headers.get("traceparent"),
                                    command_id=command_id, **fields)
        await perms.record_issuer(who, command_id)
        body: dict[str, Any] = {"commandId": command_id, "status": "accepted", "sessionId": session_id}
        if cls is c.SendMessage:
            body["messageId"] = message_id_for(command_id)
        return body

    async def accept(
        request: Request, who: Principal, cls: type[c.Command], session_id: str, **fields: Any
    ) -> tuple[dict[str, Any], bool]:
        """Publish one command, honouring ``Idempotency-Key``; returns (the 202 body, replayed)."""
        return await idempotent(request, who, lambda seed: publish(request, who, cls, session_id, seed, **fields))

    async def command(
        request: Request, who: Principal, cls: type[c.Command], session_id: str, **fields: Any
    ) -> JsonResponse:
        """Publish one command; answers 202 (``Idempotent-Replayed: true`` on a replay)."""
        body, replayed = await accept(request, who, cls, session_id, **fields)
        return JsonResponse(body, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else None)

    async def resolve(who: Principal, sid: str, spec: MediaSpec, ptt: bool) -> p.MediaRef:
        if spec.base64 is not None:
            assert spec.kind is not None
            upload = await library.store_base64(who.tenant_id, spec.base64, kind=spec.kind, declared=spec.mime,
                                                file_name=spec.file_name, session_id=sid)
        elif spec.media_id is not None:
            upload = await library.get(who.tenant_id, spec.media_id)
        else:
            assert spec.url is not None
            upload = await library.by_url(who.tenant_id, spec.url)
        if upload.session_id is not None and not perms.in_scope(who, upload.session_id):
            raise Problem(404, "media not found")
        if spec.kind is not None and spec.kind != upload.kind:
            raise Problem(422, f"media {upload.id} was uploaded as {upload.kind}, not {spec.kind}")
        return upload.ref(ptt)

    def check_kinds(kinds: list[str | None], caption: str | None, ptt: bool) -> None:
        """What WhatsApp would refuse. Checked on the declared kinds before anything is stored (None:
        not declared, passes), then again on the uploads' real kinds."""
        if len(kinds) > 1 and any(k not in (None, "image") for k in kinds):
            raise Problem(422, "several files in one request must all be images")
        if ptt and any(k not in (None, "audio") for k in kinds):
            raise Problem(422, "ptt (voice note) needs an audio file")
        if caption and kinds[0] in ("audio", "sticker"):
            raise Problem(422, f"{kinds[0]} messages cannot have a caption")

    async def send_media(request: Request, who: Principal, sid: str, to: str,
                         body: ChatSendBody) -> tuple[dict[str, Any], bool]:
        specs = body.media if isinstance(body.media, list) else [body.media] if body.media else []
        if len(specs) > library.settings.images_per_request:
            raise Problem(422, f"at most {library.settings.images_per_request} files per request")
        caption = body.caption if body.caption is not None else body.content
        check_kinds([s.kind for s in specs], caption, body.ptt)

        async def produce(seed: str | None) -> dict[str, Any]:
            refs: list[p.MediaRef] = []
            try:
                for spec in specs:
                    refs.append(await resolve(who, sid, spec, body.ptt))
                check_kinds([r.kind for r in refs], caption, body.ptt)
                first = refs[0]
                if first.kind == "audio" and not body.ptt and first.mime not in PLAYABLE_AUDIO:
                    raise Problem(415, f"{first.mime} plays only as a voice note: send it with ptt: true",
                                  accepted=sorted(PLAYABLE_AUDIO))
            except BaseException:
                # Base64 files were stored only for this request: a refused one leaves nothing behind.
                for spec, ref in zip(specs, refs, strict=False):
                    if spec.base64 is not None and ref.media_id:
                        await library.discard(who.tenant_id, ref.media_id)
                raise
            sent = []
            for i, ref in enumerate(refs):
                sent.append(await publish(request, who, c.SendMessage, sid, seed, index=i, to=to, media=ref,
                                          content=caption if i == 0 else None,
                                          reply_to_message_id=body.reply_to_message_id if i == 0 else None))
            out = dict(sent[0])
            if isinstance(body.media, list):
                out["commandIds"] = [b["commandId"] for b in sent]
                out["messageIds"] = [b["messageId"] for b in sent]
            return out

        return await idempotent(request, who, produce)

    async def send(request: Request, who: Principal, sid: str, to: str, body: ChatSendBody) -> JsonResponse:
        await perms.chat(who, to)
        if body.media is not None:
            out, replayed = await send_media(request, who, sid, to, body)
            return JsonResponse(out, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else None)
        content, forwarded = body.content, False
        if body.forward_message_id is not None:
            await perms.forward_source(who, sid, body.forward_message_id)
            try:
                original = await queries.message_text(who.tenant_id, sid, body.forward_message_id)
            except NotFound as exc:
                raise Problem(404, "message to forward not found") from exc
            if original is None:
                raise Problem(422, "only text messages can be forwarded")
            content, forwarded = original, True
        return await command(request, who, c.SendMessage, sid, to=to, content=content,
                             reply_to_message_id=body.reply_to_message_id, forwarded=forwarded)

    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/sessions", status_code=202)
    async def create_session(who: Who, request: Request) -> JsonResponse:
        perms.manage_sessions(who, creating=True)
        body = await _parse(request, CreateSessionBody)
        session_id = await bus.register_session(who.tenant_id)
        return await command(request, who, c.CreateSession, session_id, name=body.name)

    @router.get("/sessions")
    async def list_sessions(who: Who) -> JsonResponse:
        views = [perms.session_view(who, v) for v in await queries.sessions(who.tenant_id)
                 if perms.in_scope(who, v["id"])]
        return JsonResponse({"sessions": views})

    @router.get("/sessions/{session_id}")
    async def get_session(session_id: str, who: Who) -> JsonResponse:
        sid = await owned(who, session_id)
        view = await queries.session(who.tenant_id, sid)
        if view is None:
            raise Problem(404, "session not found")
        return JsonResponse(perms.session_view(who, view))

    @router.post("/sessions/{session_id}/start", status_code=202)
    async def start_session(session_id: str, who: Who, request: Request) -> JsonResponse:
        perms.manage_sessions(who)
        return await command(request, who, c.StartSession, await owned(who, session_id))

    @router.post("/sessions/{session_id}/pair-code")
    async def pair_code(session_id: str, who: Who, request: Request) -> JsonResponse:
        """Ask for a pairing code; answers 200 with the code once the runner has it, else 202 to poll."""
        perms.manage_sessions(who)
        body = await _parse(request, PairCodeBody)
        accepted, replayed = await accept(request, who, c.RequestPairCode, await owned(who, session_id),
                                          phone=body.phone)
        command_id = accepted["commandId"]
        for _ in range(50):  # the code comes back through Kafka and the projector; usually well under a second
            outcome = await queries.command(who.tenant_id, command_id)
            if outcome is not None:
                if outcome["status"] == "failed":
                    raise Problem(409, outcome["reason"] or "pairing failed", code=outcome["code"],
                                  commandId=command_id)
                return JsonResponse({"commandId": command_id, "phone": body.phone, "code": outcome["result"]["code"]})
            await asyncio.sleep(0.1)
        return JsonResponse(accepted, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else None)

    @router.post("/sessions/{session_id}/stop", status_code=202)
    async def stop_session(session_id: str, who: Who, request: Request) -> JsonResponse:
        perms.manage_sessions(who)
        return await command(request, who, c.StopSession, await owned(who, session_id))

    @router.delete("/sessions/{session_id}", status_code=202)
    async def delete_session(session_id: str, who: Who, request: Request) -> JsonResponse:
        perms.manage_sessions(who)
        return await command(request, who, c.DeleteSession, await owned(who, session_id))

    @router.post("/sessions/{session_id}/messages", status_code=202)
    async def send_message(session_id: str, who: Who, request: Request) -> JsonResponse:
        body = await _parse(request, SendBody, media_body_max)
        sid = await owned(who, session_id)
        return await send(request, who, sid, body.to, body)

    @router.post("/chats/{jid}/messages", status_code=202)
    async def send_to_chat(jid: str, who: Who, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        body = await _parse(request, ChatSendBody, media_body_max)
        sid = await session_for(who, body.session_id)
        return await send(request, who, sid, chat, body)

    @router.post("/api/send-pdf", status_code=202)
    async def send_pdf(who: Who, request: Request) -> JsonResponse:
        """Seed 002: a PDF (invoice, receipt) as a document; 400 when parameters are missing."""
        try:
            body = await _parse(request, SendPdfBody, media_body_max)
        except Problem as exc:
            if exc.status != 422:
                raise
            raise Problem(400, "sessionId, to and pdfBase64 are required and must be valid", **exc.extra) from exc
        to = body.to
        sid = await perms.declared_or_owned(who, bus, body.session_id)
        await perms.chat(who, to)
        spec = MediaSpec(base64=body.pdf_base64, kind="document", mime="application/pdf", file_name=body.file_name)
        send_body = ChatSendBody(media=spec, caption=body.caption)
        try:
            out, replayed = await send_media(request, who, sid, to, send_body)
        except Problem as exc:
            if exc.status != 422:
                raise
            raise Problem(400, exc.detail, **exc.extra) from exc
        return JsonResponse({"success": True, "message": "queued for sending", **out}, status_code=202,
                            headers={"Idempotent-Replayed": "true"} if replayed else None)

    @router.post("/chats/{jid}/read", status_code=202)
    async def read_chat(jid: str, who: Who, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        body = await _parse(request, ReadBody)
        sid = await session_for(who, body.session_id)
        return await command(request, who, c.ReadMessages, sid, chat_jid=chat, message_ids=body.message_ids)

    @router.patch("/chats/{jid}/messages/{message_id}", status_code=202)
    async def edit_message(jid: str, message_id: str, who: Who, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        body = await _parse(request, EditBody)
        sid = await session_for(who, body.session_id)
        return await command(request, who, c.EditMessage, sid, chat_jid=chat, message_id=message_id,
                             content=body.content)

    @router.delete("/chats/{jid}/messages/{message_id}", status_code=202)
    async def delete_message(jid: str, message_id: str, who: Who, request: Request,
                             session_id: SessionQuery = None) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        sid = await session_for(who, session_id)
        return await command(request, who, c.DeleteMessage, sid, chat_jid=chat, message_id=message_id)

    @router.post("/chats/{jid}/messages/{message_id}/reactions", status_code=202)
    async def react(jid: str, message_id: str, who: Who, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        body = await _parse(request, ReactBody)
        sid = await session_for(who, body.session_id)
        return await command(request, who, c.ReactToMessage, sid, chat_jid=chat, message_id=message_id,
                             emoji=body.emoji)

    @router.post("/chats/{jid}/presence", status_code=202)
    async def chat_presence(jid: str, who: Who, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        body = await _parse(request, PresenceBody)
        sid = await session_for(who, body.session_id)
        return await command(request, who, c.SendPresence, sid, chat_jid=chat, presence=body.presence)

    @router.post("/chats/{jid}/presence/subscribe", status_code=202)
    async def subscribe_presence(jid: str, who: Who, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        body = await _parse(request, SessionOnlyBody)
        sid = await session_for(who, body.session_id)
        return await command(request, who, c.SubscribePresence, sid, jid=chat)

    @router.get("/chats")
    async def list_chats(who: Who, session_id: SessionQuery = None) -> JsonResponse:
        sid = await session_for(who, session_id)
        chats = await perms.filter_rows(who, await queries.chats(who.tenant_id, sid), "jid")
        return JsonResponse({"sessionId": sid, "chats": chats})

    @router.get("/chats/{jid}/messages")
    async def list_messages(
        jid: str,
        who: Who,
        session_id: SessionQuery = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> JsonResponse:
        chat = _jid_or_422(jid)
        await perms.chat(who, chat)
        sid = await session_for(who, session_id)
        try:
            position = decode_cursor(cursor) if cursor else None
        except ValueError as exc:
            raise Problem(422, "invalid cursor") from exc
        items, next_cursor = await queries.messages(who.tenant_id, sid, chat, limit, position)
        return JsonResponse({"sessionId": sid, "chatJid": chat, "messages": items, "nextCursor": next_cursor})

    @router.get("/contacts")
    async def list_contacts(who: Who, session_id: SessionQuery = None) -> JsonResponse:
        sid = await session_for(who, session_id)
        contacts = await perms.filter_rows(who, await queries.contacts(who.tenant_id, sid), "id")
        return JsonResponse({"sessionId": sid, "contacts": contacts})

    @router.get("/commands/{command_id}")
    async def get_command(command_id: Annotated[str, Field(max_length=100)], who: Who) -> JsonResponse:
        outcome = await queries.command(who.tenant_id, command_id)
        if outcome is None or not await perms.command_visible(who, outcome):
            raise Problem(404, "command not found or still pending")
        return JsonResponse(outcome)

    return router
