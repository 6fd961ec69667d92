"""Seed 004's dashboards: summary, timeline (hour|day|month), by group, top contacts, current month, monthly.

``from``/``to`` are dates or date-times (default: the last 30 days), ``tz`` a time zone (default: the
tenant's). The numbers come from the analytics service's windows (faust-streaming).
(No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.)
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from command_api.address_book.repository import AddressBookRepository
from command_api.campaigns.context import CampaignContext, Ctx, Who
from command_api.dashboard import schemas as s
from command_api.dashboard.repository import DashboardRepository
from command_api.dashboard.service import DashboardService
from command_api.shared.problems import AUTHED, responses

router = APIRouter(prefix="/dashboard", tags=["dashboard"], responses=responses(*AUTHED, 403, 404))
From = Annotated[str | None, Query(alias="from", max_length=40)]
To = Annotated[str | None, Query(max_length=40)]
Tz = Annotated[str | None, Query(max_length=64)]


def service(ctx: CampaignContext) -> DashboardService:
    return DashboardService(DashboardRepository(ctx.pool), AddressBookRepository(ctx.pool))


@router.get("/summary")
async def summary(who: Who, ctx: Ctx, start: From = None, to: To = None, tz: Tz = None) -> s.Summary:
    return await service(ctx).summary(who.tenant_id, tz, start, to)


@router.get("/timeline")
async def timeline(who: Who, ctx: Ctx, interval: Annotated[Literal["hour", "day", "month"], Query()] = "day",
                   start: From = None, to: To = None, tz: Tz = None) -> s.Timeline:
    return await service(ctx).timeline(who.tenant_id, interval, tz, start, to)


@router.get("/by-group")
async def by_group(who: Who, ctx: Ctx, start: From = None, to: To = None, tz: Tz = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> s.Breakdown:
    return await service(ctx).breakdown(who.tenant_id, "group", tz, start, to, limit)


@router.get("/by-contact")
async def by_contact(who: Who, ctx: Ctx, start: From = None, to: To = None, tz: Tz = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 10) -> s.Breakdown:
    return await service(ctx).breakdown(who.tenant_id, "contact", tz, start, to, limit)


@router.get("/current-month")
async def current_month(who: Who, ctx: Ctx, tz: Tz = None) -> s.Timeline:
    return await service(ctx).current_month(who.tenant_id, tz)


@router.get("/monthly")
async def monthly(who: Who, ctx: Ctx, tz: Tz = None,
                  months: Annotated[int, Query(ge=1, le=36)] = 12) -> s.Timeline:
    return await service(ctx).monthly(who.tenant_id, tz, months)
