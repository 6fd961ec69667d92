"""Messages: send (to a session or a chat), seed 002's send-pdf, edit, delete, react."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from command_api.messages.schemas import (
    ChatSendBody,
    EditBody,
    MessageAccepted,
    PdfAccepted,
    ReactBody,
    SendBody,
    SendPdfBody,
)
from command_api.messages.service import MessagesService
from command_api.shared.bodies import (
    IDEMPOTENCY_HEADERS,
    CommandAccepted,
    IdPath,
    JidPath,
    MessageIdPath,
    jid_or_422,
)
from command_api.shared.commands import accepted
from command_api.shared.idempotency import Idem, IdempotencyKey
from command_api.shared.problems import AUTHED, Problem, clean_errors, responses
from command_api.shared.security import Who

router = APIRouter(tags=["messages"], responses=responses(*AUTHED))
Traceparent = Annotated[str | None, Header(include_in_schema=False)]
SessionQuery = Annotated[str | None, Query(alias="sessionId", max_length=64)]
ACCEPTED = {"model": CommandAccepted, "description": "Accepted: the command is durably on Kafka.",
            "headers": IDEMPOTENCY_HEADERS}
SENT = {"model": MessageAccepted, "description": "Accepted: the message is durably on Kafka.",
        "headers": IDEMPOTENCY_HEADERS}
MEDIA_ERRORS = (403, 404, 409, 413, 415)


async def service(request: Request) -> MessagesService:
    messages: MessagesService = request.app.state.services.messages
    return messages


Service = Annotated[MessagesService, Depends(service)]


@router.post("/sessions/{session_id}/messages", status_code=202, response_model=MessageAccepted,
             responses={202: SENT, **responses(*MEDIA_ERRORS)})
async def send_message(request: Request, session_id: IdPath, body: SendBody, who: Who, svc: Service,
                       idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Send a text, a reply, a forward, or media (one file, or an album of images)."""
    return accepted(await svc.send_to_session(who, await Idem.of(request, idempotency_key), traceparent,
                                              session_id, body.to, body))


@router.post("/chats/{jid}/messages", status_code=202, response_model=MessageAccepted,
             responses={202: SENT, **responses(*MEDIA_ERRORS)})
async def send_to_chat(request: Request, jid: JidPath, body: ChatSendBody, who: Who, svc: Service,
                       idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """The same, to a chat, from the tenant's latest session unless `sessionId` names one."""
    return accepted(await svc.send_to_chat(who, await Idem.of(request, idempotency_key), traceparent,
                                           jid_or_422(jid), body))


class Seed002Route(APIRoute):
    """Seed 002's clients expect 400 (not 422) for missing or invalid parameters."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise Problem(400, "sessionId, to and pdfBase64 are required and must be valid",
                              errors=clean_errors(list(exc.errors()))) from exc
            except Problem as exc:
                if exc.status != 422:
                    raise
                raise Problem(400, exc.detail, exc.headers, **exc.extra) from exc

        return handle


seed002 = APIRouter(tags=["messages"], route_class=Seed002Route, responses=responses(*AUTHED))


@seed002.post("/api/send-pdf", status_code=202, response_model=PdfAccepted,
              responses={202: {**SENT, "model": PdfAccepted}, **responses(400, *MEDIA_ERRORS)})
async def send_pdf(request: Request, body: SendPdfBody, who: Who, svc: Service,
                   idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Seed 002: a PDF (invoice, receipt) as a document; `sessionId` may be a declared session's name."""
    answer = await svc.send_pdf(who, await Idem.of(request, idempotency_key), traceparent, body.session_id,
                                body.to, body.pdf_base64, body.file_name, body.caption)
    return accepted(answer, {"success": True, "message": "queued for sending"})


router.include_router(seed002)


@router.patch("/chats/{jid}/messages/{message_id}", status_code=202, response_model=CommandAccepted,
              responses={202: ACCEPTED, **responses(403, 404, 409)})
async def edit_message(request: Request, jid: JidPath, message_id: MessageIdPath, body: EditBody, who: Who,
                       svc: Service, idempotency_key: IdempotencyKey = None,
                       traceparent: Traceparent = None) -> Response:
    """Edit one of your messages."""
    return accepted(await svc.edit(who, await Idem.of(request, idempotency_key), traceparent, jid_or_422(jid),
                                   message_id, body.content, body.session_id))


@router.delete("/chats/{jid}/messages/{message_id}", status_code=202, response_model=CommandAccepted,
               responses={202: ACCEPTED, **responses(403, 404, 409)})
async def delete_message(request: Request, jid: JidPath, message_id: MessageIdPath, who: Who, svc: Service,
                         session_id: SessionQuery = None, idempotency_key: IdempotencyKey = None,
                         traceparent: Traceparent = None) -> Response:
    """Delete a message for everyone."""
    return accepted(await svc.delete(who, await Idem.of(request, idempotency_key), traceparent, jid_or_422(jid),
                                     message_id, session_id))


@router.post("/chats/{jid}/messages/{message_id}/reactions", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def react(request: Request, jid: JidPath, message_id: MessageIdPath, body: ReactBody, who: Who,
                svc: Service, idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """React with an emoji, or remove your reaction with `{"emoji": null}`."""
    return accepted(await svc.react(who, await Idem.of(request, idempotency_key), traceparent, jid_or_422(jid),
                                    message_id, body.emoji, body.session_id))


