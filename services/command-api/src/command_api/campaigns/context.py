"""What the campaign-related slices share: their dependencies (set once by :func:`mount`) and the caller.

(No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.)
"""

from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Header, Request

from command_api.media_library import MediaLibrary
from command_api.problems import Problem
from zapstream_platform.tokens import Principal
from zapstream_platform.topics import Topics


@dataclass(frozen=True)
class CampaignContext:
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    topics: Topics
    library: MediaLibrary
    principal: Any  # the app's authenticating dependency (access token or API key)


def mount(app: FastAPI, *, pool: asyncpg.Pool, producer: AIOKafkaProducer, topics: Topics,
          library: MediaLibrary, principal: Any) -> None:
    """Give the slices their dependencies and add their routers (one call from the composition root)."""
    from command_api.address_book.router import router as address_book
    from command_api.campaigns.router import router as campaigns
    from command_api.dashboard.router import router as dashboard
    from command_api.suppressions.router import router as suppressions

    app.state.campaign_context = CampaignContext(pool, producer, topics, library, principal)
    for router in (address_book, campaigns, suppressions, dashboard):
        app.include_router(router)


def context(request: Request) -> CampaignContext:
    ctx: CampaignContext = request.app.state.campaign_context
    return ctx


Ctx = Annotated[CampaignContext, Depends(context)]


async def caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The authenticated caller; campaigns are for owners, admins and API keys, not agents."""
    who: Principal = await context(request).principal(authorization=authorization, x_api_key=x_api_key)
    if who.is_agent:
        raise Problem(403, "agents cannot manage campaigns or the address book")
    return who


Who = Annotated[Principal, Depends(caller)]
