"""Groups: ``POST /groups``, ``/groups/sync``, ``/groups/{jid}/participants``, ``/groups/{jid}/leave``,
``POST /groups/{jid}/invite-link``.

Outcomes arrive as ``session.groups.upsert`` (metadata: created, synced) and ``session.groups.participants``
on the WebSocket and webhooks, and at ``GET /commands/{commandId}`` (``result.groupJid``). A group is a
chat like any other for sending: ``POST /chats/{groupJid}/messages``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from command_api.groups.schemas import (
    CreateGroupBody,
    GroupList,
    GroupSessionBody,
    GroupView,
    InviteLink,
    ParticipantsBody,
)
from command_api.groups.service import GroupsService
from command_api.shared.bodies import IDEMPOTENCY_HEADERS, CommandAccepted, JidPath, jid_or_422
from command_api.shared.commands import accepted
from command_api.shared.idempotency import Idem, IdempotencyKey
from command_api.shared.problems import AUTHED, Problem, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Who

router = APIRouter(tags=["groups"], responses=responses(*AUTHED))
Traceparent = Annotated[str | None, Header(include_in_schema=False)]
ACCEPTED = {"model": CommandAccepted, "description": "Accepted: the command is durably on Kafka.",
            "headers": IDEMPOTENCY_HEADERS}


async def service(request: Request) -> GroupsService:
    groups: GroupsService = request.app.state.services.groups
    return groups


Service = Annotated[GroupsService, Depends(service)]


def group_or_422(raw: str) -> str:
    jid = jid_or_422(raw)
    if not jid.endswith("@g.us"):
        raise Problem(422, "not a group JID (…@g.us)")
    return jid


SessionQuery = Annotated[str | None, Query(alias="sessionId", max_length=64)]


@router.get("/groups", response_model=GroupList, responses=responses(403, 404))
async def list_groups(who: Who, svc: Service, session_id: SessionQuery = None) -> JsonResponse:
    """The account's groups with metadata (subject, owner, participants and admins), from the read model that
    `POST /groups` and `POST /groups/sync` fill."""
    return JsonResponse(await svc.listing(who, session_id))


@router.get("/groups/{jid}", response_model=GroupView, responses=responses(403, 404))
async def get_group(jid: JidPath, who: Who, svc: Service, session_id: SessionQuery = None) -> JsonResponse:
    return JsonResponse(await svc.get(who, group_or_422(jid), session_id))


@router.post("/groups", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def create_group(request: Request, body: CreateGroupBody, who: Who, svc: Service,
                       idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Create a group; its metadata follows as `session.groups.upsert`, its JID at `GET /commands/{id}`."""
    return accepted(await svc.create(who, await Idem.of(request, idempotency_key), traceparent, body.subject,
                                     body.participants, body.session_id))


@router.post("/groups/sync", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def sync_groups(request: Request, who: Who, svc: Service, idempotency_key: IdempotencyKey = None,
                      traceparent: Traceparent = None,
                      body: Annotated[GroupSessionBody | None, Body()] = None) -> Response:
    """List every group the account is in, with metadata (subject, owner, participants and admins), as one
    `session.groups.upsert` event."""
    return accepted(await svc.sync(who, await Idem.of(request, idempotency_key), traceparent,
                                   body.session_id if body else None))


@router.post("/groups/{jid}/participants", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def participants(request: Request, jid: JidPath, body: ParticipantsBody, who: Who, svc: Service,
                       idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> Response:
    """Add, remove, promote or demote participants; the change follows as `session.groups.participants`."""
    return accepted(await svc.participants(who, await Idem.of(request, idempotency_key), traceparent,
                                           group_or_422(jid), body.action, body.participants, body.session_id))


@router.post("/groups/{jid}/leave", status_code=202, response_model=CommandAccepted,
             responses={202: ACCEPTED, **responses(403, 404, 409)})
async def leave(request: Request, jid: JidPath, who: Who, svc: Service, idempotency_key: IdempotencyKey = None,
                traceparent: Traceparent = None, body: Annotated[GroupSessionBody | None, Body()] = None) -> Response:
    return accepted(await svc.leave(who, await Idem.of(request, idempotency_key), traceparent, group_or_422(jid),
                                    body.session_id if body else None))


@router.post("/groups/{jid}/invite-link", response_model=InviteLink,
             responses={202: {**ACCEPTED, "description": "Not there yet: poll GET /commands/{commandId}."},
                        **responses(403, 404, 409)})
async def invite_link(request: Request, jid: JidPath, who: Who, svc: Service,
                      reset: Annotated[bool, Query(description="Revoke the current link first.")] = False,
                      idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None,
                      body: Annotated[GroupSessionBody | None, Body()] = None) -> Response:
    """The group's invite link (200 once the runner has it, else 202 to poll)."""
    answer, replayed, done = await svc.invite_link(who, await Idem.of(request, idempotency_key), traceparent,
                                                   group_or_422(jid), reset, body.session_id if body else None)
    if done:
        return JsonResponse(answer)
    return accepted((answer, replayed))
