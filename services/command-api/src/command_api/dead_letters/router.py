"""Dead letters (operators): ``GET /dead-letters``, ``POST /dead-letters/…/redrive``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.security import APIKeyHeader

from command_api.dead_letters.schemas import DeadLetters, Redriven
from command_api.dead_letters.service import DeadLettersService
from command_api.shared.problems import COMMON, responses
from command_api.shared.responses import ApiJson as JsonResponse

router = APIRouter(prefix="/dead-letters", tags=["operations"], responses=responses(401, 404, *COMMON))
operator_scheme = APIKeyHeader(name="X-Operator-Token", auto_error=False, scheme_name="operatorToken",
                               description="COMMAND_API_OPERATOR_TOKEN; without one configured these routes 404.")
Operator = Annotated[str | None, Depends(operator_scheme)]


async def service(request: Request) -> DeadLettersService:
    dead: DeadLettersService = request.app.state.services.dead_letters
    return dead


Service = Annotated[DeadLettersService, Depends(service)]


@router.get("", response_model=DeadLetters)
async def list_dead_letters(token: Operator, svc: Service) -> JsonResponse:
    return JsonResponse(await svc.list(token))


@router.post("/commands/{partition}/{offset}/redrive", status_code=202, response_model=Redriven)
async def redrive_command(partition: Annotated[int, Path(ge=0, le=100_000)],
                          offset: Annotated[int, Path(ge=0, le=2**62)], token: Operator, svc: Service) -> JsonResponse:
    return JsonResponse(await svc.redrive_command(token, partition, offset), status_code=202)


@router.post("/events/{dead_letter_id}/redrive", status_code=202, response_model=Redriven)
async def redrive_event(dead_letter_id: Annotated[int, Path(ge=1, le=2**62)], token: Operator,
                        svc: Service) -> JsonResponse:
    return JsonResponse(await svc.redrive_event(token, dead_letter_id), status_code=202)
