"""Calls: ``POST /sessions/{id}/calls/settings``. Incoming calls arrive as ``session.call.received``
(``status`` ``offer`` or ``rejected``) on the WebSocket and webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from command_api.calls.schemas import CallSettingsBody
from command_api.calls.service import CallsService
from command_api.shared.bodies import IDEMPOTENCY_HEADERS, CommandAccepted, IdPath
from command_api.shared.commands import accepted
from command_api.shared.idempotency import Idem, IdempotencyKey
from command_api.shared.problems import AUTHED, responses
from command_api.shared.security import Who

router = APIRouter(tags=["calls"], responses=responses(*AUTHED))
Traceparent = Annotated[str | None, Header(include_in_schema=False)]


async def service(request: Request) -> CallsService:
    calls: CallsService = request.app.state.services.calls
    return calls


Service = Annotated[CallsService, Depends(service)]


@router.post("/sessions/{session_id}/calls/settings", status_code=202, response_model=CommandAccepted,
             responses={202: {"model": CommandAccepted, "headers": IDEMPOTENCY_HEADERS,
                              "description": "Accepted: the command is durably on Kafka."},
                        **responses(403, 404, 409)})
async def call_settings(request: Request, session_id: IdPath, body: CallSettingsBody, who: Who, svc: Service,
                        idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Reject incoming calls automatically (each still recorded as `session.call.received`), optionally answering
    the caller with `replyText`."""
    return accepted(await svc.configure(who, await Idem.of(request, idempotency_key), traceparent, session_id,
                                        body.reject_calls, body.reply_text))
