"""API keys: ``/api-keys`` (owner and admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from command_api.keys.schemas import ApiKeyBody, ApiKeyList, NewApiKey
from command_api.keys.service import KeysService
from command_api.shared.bodies import IdPath
from command_api.shared.problems import AUTHED, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Admin

router = APIRouter(tags=["api keys"], responses=responses(*AUTHED, 403))


async def service(request: Request) -> KeysService:
    keys: KeysService = request.app.state.services.keys
    return keys


Service = Annotated[KeysService, Depends(service)]


@router.post("/api-keys", status_code=201, response_model=NewApiKey, responses=responses(404))
async def create_key(body: ApiKeyBody, who: Admin, svc: Service) -> JsonResponse:
    """The clear key is in this answer only."""
    return JsonResponse(await svc.create(who, body.name, body.session_ids), status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get("/api-keys", response_model=ApiKeyList)
async def list_keys(who: Admin, svc: Service) -> JsonResponse:
    return JsonResponse({"apiKeys": await svc.list(who)})


@router.delete("/api-keys/{key_id}", status_code=204, response_class=Response, responses=responses(404))
async def revoke_key(key_id: IdPath, who: Admin, svc: Service) -> Response:
    """Revoked keys stop working at once, in every API process."""
    await svc.revoke(who, key_id)
    return Response(status_code=204)
