"""HTTP handlers: parse, call the application layer, map errors. Nothing else.

(No ``from __future__ import annotations`` here: FastAPI resolves the
dependency aliases defined inside :func:`build_router` at runtime.)
"""

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from command_api.application import (
    Auth,
    CommandBus,
    Idempotency,
    IdempotencyConflict,
    NotFound,
    Queries,
    decode_cursor,
)
from command_api.problems import Problem
from zapstream_domain import commands as c
from zapstream_domain.decisions import message_id_for
from zapstream_domain.errors import InvalidJid
from zapstream_domain.jids import normalize_jid
from zapstream_platform.http import JsonResponse

MessageId = Annotated[str, Field(min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class CreateSessionBody(Body):
    name: str | None = Field(default=None, max_length=200)


class ChatSendBody(Body):
    """Text, a reply (``replyToMessageId``) or a forward (``forwardMessageId``, content optional)."""

    content: str | None = Field(default=None, min_length=1, max_length=65536)
    reply_to_message_id: MessageId | None = None
    forward_message_id: MessageId | None = None
    session_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _content_or_forward(self) -> "ChatSendBody":
        if self.content is None and self.forward_message_id is None:
            raise ValueError("either content or forwardMessageId is required")
        return self


class SendBody(ChatSendBody):
    to: str = Field(min_length=1, max_length=200)

    @field_validator("to")
    @classmethod
    def _jid(cls, value: str) -> str:
        try:
            return normalize_jid(value)
        except InvalidJid as exc:
            raise ValueError(str(exc)) from exc


class ReadBody(Body):
    message_ids: list[MessageId] = Field(min_length=1, max_length=1000)
    session_id: str | None = Field(default=None, max_length=64)


class EditBody(Body):
    content: str = Field(min_length=1, max_length=65536)
    session_id: str | None = Field(default=None, max_length=64)


class ReactBody(Body):
    emoji: str | None = Field(max_length=32)
    session_id: str | None = Field(default=None, max_length=64)

    @field_validator("emoji")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("emoji must be a non-empty string, or null to remove the reaction")
        return value


class PresenceBody(Body):
    presence: Literal["composing", "recording", "paused"]
    session_id: str | None = Field(default=None, max_length=64)


class SessionOnlyBody(Body):
    session_id: str | None = Field(default=None, max_length=64)


def _jid_or_422(raw: str) -> str:
    try:
        return normalize_jid(raw)
    except InvalidJid as exc:
        raise Problem(422, str(exc)) from exc


async def _parse(request: Request, model: type[Body]) -> Any:
    """Parse the JSON body into ``model``; problems, never 500s, for anything a client can send."""
    raw = await request.body()
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise Problem(422, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise Problem(422, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Problem(422, "request failed validation", errors=errors) from exc


def build_router(auth: Auth, bus: CommandBus, queries: Queries, idempotency: Idempotency) -> APIRouter:
    async def tenant(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> str:
        key = x_api_key or ""
        if authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        tenant_id = await auth.tenant_for_key(key) if key else None
        if tenant_id is None:
            raise Problem(401, "missing or invalid credentials")
        return tenant_id

    Tenant = Annotated[str, Depends(tenant)]
    SessionQuery = Annotated[str | None, Query(alias="sessionId", max_length=64)]

    async def owned(tenant_id: str, session_id: str) -> str:
        try:
            return await bus.owned(tenant_id, session_id)
        except NotFound as exc:
            raise Problem(404, "session not found") from exc

    async def session_for(tenant_id: str, session_id: str | None) -> str:
        if session_id:
            return await owned(tenant_id, session_id)
        try:
            return await bus.latest_session(tenant_id)
        except NotFound as exc:
            raise Problem(404, "tenant has no session") from exc

    async def command(
        request: Request, tenant_id: str, cls: type[c.Command], session_id: str, **fields: Any
    ) -> JsonResponse:
        """Publish one command, honouring ``Idempotency-Key``; answers 202."""

        async def produce() -> dict[str, Any]:
            command_id = await bus.send(cls, tenant_id, session_id, request.headers.get("traceparent"), **fields)
            body: dict[str, Any] = {"commandId": command_id, "status": "accepted", "sessionId": session_id}
            if cls is c.SendMessage:
                body["messageId"] = message_id_for(command_id)
            return body

        key = request.headers.get("idempotency-key")
        if key is None:
            return JsonResponse(await produce(), status_code=202)
        if not 1 <= len(key) <= 200:
            raise Problem(422, "Idempotency-Key must be 1 to 200 characters")
        fingerprint = Idempotency.fingerprint(request.method, request.url.path, await request.body())
        try:
            body, replayed = await idempotency.run(tenant_id, key, fingerprint, produce)
        except IdempotencyConflict as exc:
            raise Problem(exc.status, exc.detail) from exc
        return JsonResponse(body, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else None)

    async def send(request: Request, tenant_id: str, sid: str, to: str, body: ChatSendBody) -> JsonResponse:
        content, forwarded = body.content, False
        if body.forward_message_id is not None:
            try:
                original = await queries.message_text(tenant_id, sid, body.forward_message_id)
            except NotFound as exc:
                raise Problem(404, "message to forward not found") from exc
            if original is None:
                raise Problem(422, "only text messages can be forwarded")
            content, forwarded = original, True
        return await command(request, tenant_id, c.SendMessage, sid, to=to, content=content,
                             reply_to_message_id=body.reply_to_message_id, forwarded=forwarded)

    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/sessions", status_code=202)
    async def create_session(tenant_id: Tenant, request: Request) -> JsonResponse:
        body = await _parse(request, CreateSessionBody)
        session_id = await bus.register_session(tenant_id)
        return await command(request, tenant_id, c.CreateSession, session_id, name=body.name)

    @router.get("/sessions")
    async def list_sessions(tenant_id: Tenant) -> JsonResponse:
        return JsonResponse({"sessions": await queries.sessions(tenant_id)})

    @router.get("/sessions/{session_id}")
    async def get_session(session_id: str, tenant_id: Tenant) -> JsonResponse:
        sid = await owned(tenant_id, session_id)
        view = await queries.session(tenant_id, sid)
        if view is None:
            raise Problem(404, "session not found")
        return JsonResponse(view)

    @router.post("/sessions/{session_id}/start", status_code=202)
    async def start_session(session_id: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        return await command(request, tenant_id, c.StartSession, await owned(tenant_id, session_id))

    @router.post("/sessions/{session_id}/stop", status_code=202)
    async def stop_session(session_id: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        return await command(request, tenant_id, c.StopSession, await owned(tenant_id, session_id))

    @router.delete("/sessions/{session_id}", status_code=202)
    async def delete_session(session_id: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        return await command(request, tenant_id, c.DeleteSession, await owned(tenant_id, session_id))

    @router.post("/sessions/{session_id}/messages", status_code=202)
    async def send_message(session_id: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        body = await _parse(request, SendBody)
        sid = await owned(tenant_id, session_id)
        return await send(request, tenant_id, sid, body.to, body)

    @router.post("/chats/{jid}/messages", status_code=202)
    async def send_to_chat(jid: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        body = await _parse(request, ChatSendBody)
        sid = await session_for(tenant_id, body.session_id)
        return await send(request, tenant_id, sid, chat, body)

    @router.post("/chats/{jid}/read", status_code=202)
    async def read_chat(jid: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        body = await _parse(request, ReadBody)
        sid = await session_for(tenant_id, body.session_id)
        return await command(request, tenant_id, c.ReadMessages, sid, chat_jid=chat, message_ids=body.message_ids)

    @router.patch("/chats/{jid}/messages/{message_id}", status_code=202)
    async def edit_message(jid: str, message_id: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        body = await _parse(request, EditBody)
        sid = await session_for(tenant_id, body.session_id)
        return await command(request, tenant_id, c.EditMessage, sid, chat_jid=chat, message_id=message_id,
                             content=body.content)

    @router.delete("/chats/{jid}/messages/{message_id}", status_code=202)
    async def delete_message(jid: str, message_id: str, tenant_id: Tenant, request: Request,
                             session_id: SessionQuery = None) -> JsonResponse:
        chat = _jid_or_422(jid)
        sid = await session_for(tenant_id, session_id)
        return await command(request, tenant_id, c.DeleteMessage, sid, chat_jid=chat, message_id=message_id)

    @router.post("/chats/{jid}/messages/{message_id}/reactions", status_code=202)
    async def react(jid: str, message_id: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        body = await _parse(request, ReactBody)
        sid = await session_for(tenant_id, body.session_id)
        return await command(request, tenant_id, c.ReactToMessage, sid, chat_jid=chat, message_id=message_id,
                             emoji=body.emoji)

    @router.post("/chats/{jid}/presence", status_code=202)
    async def chat_presence(jid: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        body = await _parse(request, PresenceBody)
        sid = await session_for(tenant_id, body.session_id)
        return await command(request, tenant_id, c.SendPresence, sid, chat_jid=chat, presence=body.presence)

    @router.post("/chats/{jid}/presence/subscribe", status_code=202)
    async def subscribe_presence(jid: str, tenant_id: Tenant, request: Request) -> JsonResponse:
        chat = _jid_or_422(jid)
        body = await _parse(request, SessionOnlyBody)
        sid = await session_for(tenant_id, body.session_id)
        return await command(request, tenant_id, c.SubscribePresence, sid, jid=chat)

    @router.get("/chats")
    async def list_chats(tenant_id: Tenant, session_id: SessionQuery = None) -> JsonResponse:
        sid = await session_for(tenant_id, session_id)
        return JsonResponse({"sessionId": sid, "chats": await queries.chats(tenant_id, sid)})

    @router.get("/chats/{jid}/messages")
    async def list_messages(
        jid: str,
        tenant_id: Tenant,
        session_id: SessionQuery = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> JsonResponse:
        chat = _jid_or_422(jid)
        sid = await session_for(tenant_id, session_id)
        try:
            position = decode_cursor(cursor) if cursor else None
        except ValueError as exc:
            raise Problem(422, "invalid cursor") from exc
        items, next_cursor = await queries.messages(tenant_id, sid, chat, limit, position)
        return JsonResponse({"sessionId": sid, "chatJid": chat, "messages": items, "nextCursor": next_cursor})

    @router.get("/contacts")
    async def list_contacts(tenant_id: Tenant, session_id: SessionQuery = None) -> JsonResponse:
        sid = await session_for(tenant_id, session_id)
        return JsonResponse({"sessionId": sid, "contacts": await queries.contacts(tenant_id, sid)})

    @router.get("/commands/{command_id}")
    async def get_command(command_id: Annotated[str, Field(max_length=100)], tenant_id: Tenant) -> JsonResponse:
        outcome = await queries.command(tenant_id, command_id)
        if outcome is None:
            raise Problem(404, "command not found or still pending")
        return JsonResponse(outcome)

    return router
