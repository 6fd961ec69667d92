"""Chats: ``GET /chats``, ``GET /chats/{jid}/messages``, ``GET /contacts``, read receipts, presence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from command_api.chats.schemas import (
    ChatList,
    ContactList,
    MessagePage,
    PresenceBody,
    ReadBody,
    SessionOnlyBody,
)
from command_api.chats.service import ChatsService
from command_api.shared.bodies import IDEMPOTENCY_HEADERS, CommandAccepted, JidPath, jid_or_422
from command_api.shared.commands import accepted
from command_api.shared.idempotency import Idem, IdempotencyKey
from command_api.shared.problems import AUTHED, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Who

router = APIRouter(tags=["chats"], responses=responses(*AUTHED))
Traceparent = Annotated[str | None, Header(include_in_schema=False)]
SessionQuery = Annotated[str | None, Query(alias="sessionId", max_length=64,
                                           description="A session id; the tenant's latest when absent.")]
ACCEPTED = {"model": CommandAccepted, "description": "Accepted: the command is durably on Kafka.",
            "headers": IDEMPOTENCY_HEADERS}


async def service(request: Request) -> ChatsService:
    chats: ChatsService = request.app.state.services.chats
    return chats


Service = Annotated[ChatsService, Depends(service)]


@router.get("/chats", response_model=ChatList, responses=responses(404))
async def list_chats(who: Who, svc: Service, session_id: SessionQuery = None) -> JsonResponse:
    """Chats, most recent first, with the last message and unread count (an empty list without a session)."""
    return JsonResponse(await svc.chats(who, session_id))


@router.get("/chats/{jid}/messages", response_model=MessagePage, responses=responses(403, 404))
async def list_messages(jid: JidPath, who: Who, svc: Service, session_id: SessionQuery = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        cursor: Annotated[str | None, Query(max_length=200)] = None) -> JsonResponse:
    """Newest first; the cursor stays stable while messages arrive."""
    return JsonResponse(await svc.messages(who, jid_or_422(jid), session_id, limit, cursor))


@router.get("/contacts", response_model=ContactList, responses=responses(404))
async def list_contacts(who: Who, svc: Service, session_id: SessionQuery = None) -> JsonResponse:
    """Contacts with name, notify (push name) and imgUrl (an empty list without a session)."""
    return JsonResponse(await svc.contacts(who, session_id))


@router.post("/chats/{jid}/read", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def read_chat(request: Request, jid: JidPath, body: ReadBody, who: Who, svc: Service,
                    idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Send read receipts; the chat's unread count drops."""
    return accepted(await svc.read(who, await Idem.of(request, idempotency_key), traceparent, jid_or_422(jid),
                                   body.message_ids, body.session_id))


@router.post("/chats/{jid}/presence", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def chat_presence(request: Request, jid: JidPath, body: PresenceBody, who: Who, svc: Service,
                        idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Typing indicators."""
    return accepted(await svc.presence(who, await Idem.of(request, idempotency_key), traceparent,
                                       jid_or_422(jid), body.presence, body.session_id))


@router.post("/chats/{jid}/presence/subscribe", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def subscribe_presence(request: Request, jid: JidPath, who: Who, svc: Service,
                             idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None,
                             body: Annotated[SessionOnlyBody | None, Body()] = None) -> Response:
    """Receive `session.presence.update` for that contact."""
    return accepted(await svc.subscribe(who, await Idem.of(request, idempotency_key), traceparent,
                                        jid_or_422(jid), body.session_id if body else None))
