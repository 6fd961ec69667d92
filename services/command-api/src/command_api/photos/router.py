"""Profile photos: ``GET /chats/{jid}/photo``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from command_api.photos.schemas import PhotoView
from command_api.photos.service import PhotosService
from command_api.shared.bodies import JidPath, jid_or_422
from command_api.shared.problems import AUTHED, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Who

router = APIRouter(tags=["chats"], responses=responses(*AUTHED))


async def service(request: Request) -> PhotosService:
    photos: PhotosService = request.app.state.services.photos
    return photos


Service = Annotated[PhotosService, Depends(service)]
SessionQuery = Annotated[str | None, Query(alias="sessionId", max_length=64)]


@router.get("/chats/{jid}/photo", response_model=PhotoView, responses=responses(403, 404, 409))
async def photo(jid: JidPath, who: Who, svc: Service, session_id: SessionQuery = None) -> JsonResponse:
    """The chat's (contact's or group's) profile photo: fetched through the session's runner, cached in storage
    for a day; `url` is a signed link, null when there is no photo or it is hidden."""
    return JsonResponse(await svc.photo(who, jid_or_422(jid), session_id))
