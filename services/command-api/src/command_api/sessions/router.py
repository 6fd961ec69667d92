"""Sessions: ``/sessions``, ``/sessions/{id}/start|stop|pair-code``, ``DELETE /sessions/{id}``, ``/commands/{id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from command_api.sessions.schemas import (
    CommandOutcome,
    CreateSessionBody,
    PairCodeAnswer,
    PairCodeBody,
    SessionList,
    SessionView,
    StopSessionBody,
)
from command_api.sessions.service import SessionsService
from command_api.shared.bodies import IDEMPOTENCY_HEADERS, CommandAccepted, IdPath
from command_api.shared.commands import accepted
from command_api.shared.idempotency import Idem, IdempotencyKey
from command_api.shared.problems import AUTHED, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Who

router = APIRouter(tags=["sessions"], responses=responses(*AUTHED))
Traceparent = Annotated[str | None, Header(include_in_schema=False)]
Purge = Annotated[bool, Query(description=(
    "Also remove the session's data from the read models: its messages, chats, contacts, reactions, media "
    "references, groups, polls and command outcomes go once the deletion is processed, and a rebuild does "
    "not bring them back. A session deleted earlier without it can be purged this way too."))]
ACCEPTED = {"model": CommandAccepted, "description": "Accepted: the command is durably on Kafka.",
            "headers": IDEMPOTENCY_HEADERS}


async def service(request: Request) -> SessionsService:
    sessions: SessionsService = request.app.state.services.sessions
    return sessions


Service = Annotated[SessionsService, Depends(service)]


@router.post("/sessions", status_code=202, response_model=CommandAccepted, responses={
    202: {**ACCEPTED, "headers": {**IDEMPOTENCY_HEADERS, "Location": {
        "description": "The new session: `/sessions/{sessionId}`", "schema": {"type": "string"}}}},
    **responses(403, 409)})
async def create_session(request: Request, who: Who, svc: Service, idempotency_key: IdempotencyKey = None,
                         traceparent: Traceparent = None,
                         body: Annotated[CreateSessionBody | None, Body()] = None) -> Response:
    """Create a session and start linking it; `session.qr.updated` follows on the WebSocket."""
    answer = await svc.create(who, await Idem.of(request, idempotency_key), traceparent,
                              body.name if body else None)
    response = accepted(answer)
    response.headers["Location"] = f"/sessions/{answer[0]['sessionId']}"
    return response


@router.get("/sessions", response_model=SessionList)
async def list_sessions(who: Who, svc: Service) -> JsonResponse:
    return JsonResponse({"sessions": await svc.list(who)})


@router.get("/sessions/{session_id}", response_model=SessionView, responses=responses(404))
async def get_session(session_id: IdPath, who: Who, svc: Service) -> JsonResponse:
    """One session; a deleted session is a 404 (and never shows its QR)."""
    return JsonResponse(await svc.get(who, session_id))


@router.post("/sessions/{session_id}/start", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def start_session(request: Request, session_id: IdPath, who: Who, svc: Service,
                        idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    return accepted(await svc.start(who, await Idem.of(request, idempotency_key), traceparent, session_id))


@router.post("/sessions/{session_id}/stop", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def stop_session(request: Request, session_id: IdPath, who: Who, svc: Service,
                       idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None,
                       body: Annotated[StopSessionBody | None, Body()] = None) -> Response:
    """Stop the session. `{"reason": "logout"}` also unlinks the device; a plain stop keeps it linked, so
    `start` reconnects without a QR."""
    return accepted(await svc.stop(who, await Idem.of(request, idempotency_key), traceparent, session_id,
                                   body.reason if body else None))


@router.delete("/sessions/{session_id}", status_code=202, response_model=CommandAccepted,
               responses={202: ACCEPTED, **responses(403, 404, 409)})
async def delete_session(request: Request, session_id: IdPath, who: Who, svc: Service,
                         idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None,
                         purge: Purge = False) -> Response:
    """Delete the session: the device is unlinked and its credentials erased; the session answers 404 at once.
    `?purge=true` also removes its data (messages, chats, contacts…) from the read models."""
    return accepted(await svc.delete(who, await Idem.of(request, idempotency_key), traceparent, session_id,
                                     purge))


@router.post("/sessions/{session_id}/pair-code", response_model=PairCodeAnswer,
             responses={202: {**ACCEPTED, "description": "The code is not there yet: poll GET /commands/{commandId}."},
                        **responses(403, 404, 409)})
async def pair_code(request: Request, session_id: IdPath, body: PairCodeBody, who: Who, svc: Service,
                    idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Link by pairing code instead of QR: 200 with the code once the runner has it, else 202 to poll."""
    answer, replayed, done = await svc.pair_code(who, await Idem.of(request, idempotency_key), traceparent,
                                                 session_id, body.phone)
    if done:
        return JsonResponse(answer)
    return accepted((answer, replayed))


@router.get("/commands/{command_id}", response_model=CommandOutcome, responses=responses(404))
async def get_command(command_id: IdPath, who: Who, svc: Service) -> JsonResponse:
    """A command's outcome once the runner has decided it (404 while pending)."""
    return JsonResponse(await svc.command(who, command_id))
