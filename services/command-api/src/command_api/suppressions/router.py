"""Suppression list routes: numbers that campaigns skip (opt-outs by reply, or added by hand).

(No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from command_api.address_book.repository import AddressBookRepository
from command_api.campaigns.context import CampaignContext, Ctx, Who
from command_api.shared.problems import AUTHED, responses
from command_api.suppressions import schemas as s
from command_api.suppressions.repository import SuppressionRepository
from command_api.suppressions.service import SuppressionService

router = APIRouter(tags=["suppressions"], responses=responses(*AUTHED, 403, 404))


def service(ctx: CampaignContext) -> SuppressionService:
    return SuppressionService(SuppressionRepository(ctx.pool), AddressBookRepository(ctx.pool))


@router.get("/suppressions")
async def list_suppressions(who: Who, ctx: Ctx, cursor: Annotated[str | None, Query(max_length=40)] = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> s.SuppressionPage:
    return await service(ctx).page(who.tenant_id, cursor, limit)


@router.post("/suppressions", status_code=201)
async def add_suppression(who: Who, ctx: Ctx, body: s.SuppressionIn) -> s.SuppressionOut:
    return await service(ctx).add(who.tenant_id, body)


@router.delete("/suppressions/{phone}", status_code=204)
async def remove_suppression(who: Who, ctx: Ctx, phone: str) -> Response:
    await service(ctx).remove(who.tenant_id, phone[:40])
    return Response(status_code=204)
