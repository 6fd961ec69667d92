"""HTTP handlers: parse, call the application layer, map errors. Nothing else."""


from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from command_api.application import Auth, CommandBus, NotFound, Queries, decode_cursor
from command_api.problems import Problem
from zapstream_domain import commands as c
from zapstream_domain.decisions import message_id_for
from zapstream_domain.errors import InvalidJid
from zapstream_domain.jids import normalize_jid
from zapstream_platform.http import JsonResponse


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class CreateSessionBody(Body):
    name: str | None = Field(default=None, max_length=200)


class SendBody(Body):
    to: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=65536)
    reply_to_message_id: str | None = Field(default=None, max_length=200)

    @field_validator("to")
    @classmethod
    def _jid(cls, value: str) -> str:
        try:
            return normalize_jid(value)
        except InvalidJid as exc:
            raise ValueError(str(exc)) from exc


class ChatSendBody(Body):
    content: str = Field(min_length=1, max_length=65536)
    reply_to_message_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = None


class ReadBody(Body):
    message_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=1000)
    session_id: str | None = None


def accepted(command_id: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"commandId": command_id, "status": "accepted", **extra}, status_code=202)


def _jid_or_422(raw: str) -> str:
    try:
        return normalize_jid(raw)
    except InvalidJid as exc:
        raise Problem(422, str(exc)) from exc


def build_router(auth: Auth, bus: CommandBus, queries: Queries) -> APIRouter:
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
    Trace = Annotated[str | None, Header()]

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

    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/sessions", status_code=202)
    async def create_session(tenant_id: Tenant, request: Request, traceparent: Trace = None) -> JsonResponse:
        body = CreateSessionBody.model_validate(await _json_or_empty(request))
        session_id = await bus.register_session(tenant_id)
        command_id = await bus.send(c.CreateSession, tenant_id, session_id, traceparent, name=body.name)
        return accepted(command_id, sessionId=session_id)

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
    async def start_session(session_id: str, tenant_id: Tenant, traceparent: Trace = None) -> JsonResponse:
        sid = await owned(tenant_id, session_id)
        return accepted(await bus.send(c.StartSession, tenant_id, sid, traceparent), sessionId=sid)

    @router.post("/sessions/{session_id}/stop", status_code=202)
    async def stop_session(session_id: str, tenant_id: Tenant, traceparent: Trace = None) -> JsonResponse:
        sid = await owned(tenant_id, session_id)
        return accepted(await bus.send(c.StopSession, tenant_id, sid, traceparent), sessionId=sid)

    @router.delete("/sessions/{session_id}", status_code=202)
    async def delete_session(session_id: str, tenant_id: Tenant, traceparent: Trace = None) -> JsonResponse:
        sid = await owned(tenant_id, session_id)
        return accepted(await bus.send(c.DeleteSession, tenant_id, sid, traceparent), sessionId=sid)

    @router.post("/sessions/{session_id}/messages", status_code=202)
    async def send_message(session_id: str, body: SendBody, tenant_id: Tenant,
                           traceparent: Trace = None) -> JsonResponse:
        sid = await owned(tenant_id, session_id)
        command_id = await bus.send(c.SendMessage, tenant_id, sid, traceparent, to=body.to, content=body.content,
                                    reply_to_message_id=body.reply_to_message_id)
        return accepted(command_id, sessionId=sid, messageId=c_message_id(command_id))

    @router.post("/chats/{jid}/messages", status_code=202)
    async def send_to_chat(jid: str, body: ChatSendBody, tenant_id: Tenant,
                           traceparent: Trace = None) -> JsonResponse:
        chat = _jid_or_422(jid)
        sid = await session_for(tenant_id, body.session_id)
        command_id = await bus.send(c.SendMessage, tenant_id, sid, traceparent, to=chat, content=body.content,
                                    reply_to_message_id=body.reply_to_message_id)
        return accepted(command_id, sessionId=sid, messageId=c_message_id(command_id))

    @router.post("/chats/{jid}/read", status_code=202)
    async def read_chat(jid: str, body: ReadBody, tenant_id: Tenant, traceparent: Trace = None) -> JsonResponse:
        chat = _jid_or_422(jid)
        sid = await session_for(tenant_id, body.session_id)
        command_id = await bus.send(c.ReadMessages, tenant_id, sid, traceparent, chat_jid=chat,
                                    message_ids=body.message_ids)
        return accepted(command_id, sessionId=sid)

    @router.get("/chats")
    async def list_chats(tenant_id: Tenant, session_id: Annotated[str | None, Query(alias="sessionId")] = None
                         ) -> JsonResponse:
        sid = await session_for(tenant_id, session_id)
        return JsonResponse({"sessionId": sid, "chats": await queries.chats(tenant_id, sid)})

    @router.get("/chats/{jid}/messages")
    async def list_messages(
        jid: str,
        tenant_id: Tenant,
        session_id: Annotated[str | None, Query(alias="sessionId")] = None,
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

    @router.get("/commands/{command_id}")
    async def get_command(command_id: Annotated[str, Field(max_length=100)], tenant_id: Tenant) -> JsonResponse:
        outcome = await queries.command(tenant_id, command_id)
        if outcome is None:
            raise Problem(404, "command not found or still pending")
        return JsonResponse(outcome)

    return router


def c_message_id(command_id: str) -> str:
    return message_id_for(command_id)


async def _json_or_empty(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(422, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise Problem(422, "body must be a JSON object")
    return data
