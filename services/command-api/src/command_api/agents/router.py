"""Agents: ``/agents``, ``/agents/{id}/disable|enable``, ``/agents/{id}/chats`` (owner and admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from command_api.agents.schemas import (
    AgentAccepted,
    AgentList,
    AssignBody,
    Assigned,
    Assignments,
    NewAgentBody,
)
from command_api.agents.service import AgentsService
from command_api.identity.schemas import UserView
from command_api.shared.bodies import IdPath, JidPath
from command_api.shared.problems import AUTHED, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Admin

router = APIRouter(tags=["agents"], responses=responses(*AUTHED, 403))


async def service(request: Request) -> AgentsService:
    agents: AgentsService = request.app.state.services.agents
    return agents


Service = Annotated[AgentsService, Depends(service)]


@router.post("/agents", status_code=202, response_model=AgentAccepted)
async def create_agent(body: NewAgentBody, who: Admin, svc: Service) -> JsonResponse:
    """Create an agent (verified at once); the owner may create `role: "admin"`. The answer never tells whether
    the address already had an account."""
    return JsonResponse(await svc.create(who, body), status_code=202)


@router.get("/agents", response_model=AgentList)
async def list_agents(who: Admin, svc: Service) -> JsonResponse:
    return JsonResponse({"agents": await svc.list(who)})


@router.post("/agents/{user_id}/disable", response_model=UserView, responses=responses(404))
async def disable(user_id: IdPath, who: Admin, svc: Service) -> JsonResponse:
    """A disabled agent's tokens and sockets stop working at once."""
    return JsonResponse(await svc.set_disabled(who, user_id, True))


@router.post("/agents/{user_id}/enable", response_model=UserView, responses=responses(404))
async def enable(user_id: IdPath, who: Admin, svc: Service) -> JsonResponse:
    return JsonResponse(await svc.set_disabled(who, user_id, False))


@router.get("/agents/{user_id}/chats", response_model=Assignments, responses=responses(404))
async def list_assignments(user_id: IdPath, who: Admin, svc: Service) -> JsonResponse:
    return JsonResponse(await svc.assignments(who, user_id))


@router.post("/agents/{user_id}/chats", status_code=201, response_model=Assigned, responses=responses(404))
async def assign(user_id: IdPath, body: AssignBody, who: Admin, svc: Service) -> JsonResponse:
    return JsonResponse(await svc.assign(who, user_id, body.chat_jid), status_code=201)


@router.delete("/agents/{user_id}/chats/{jid}", status_code=204, response_class=Response,
               responses=responses(404))
async def unassign(user_id: IdPath, jid: JidPath, who: Admin, svc: Service) -> Response:
    await svc.unassign(who, user_id, jid)
    return Response(status_code=204)
