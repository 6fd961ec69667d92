"""What the campaign-related slices (campaigns, address book, suppressions, dashboard) share.

Their dependencies are put on ``app.state.campaign_context`` by the composition root when the
app starts; the caller is the app's authenticated principal. (No ``from __future__ import
annotations``: FastAPI reads these signatures at runtime.)
"""

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request

from command_api.media.service import MediaLibrary
from command_api.shared.problems import Problem
from command_api.shared.security import current_principal
from zapstream_platform.tokens import Principal
from zapstream_platform.topics import Topics


@dataclass(frozen=True)
class CampaignContext:
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    topics: Topics
    library: MediaLibrary


def context(request: Request) -> CampaignContext:
    ctx: CampaignContext | None = getattr(request.app.state, "campaign_context", None)
    if ctx is None:
        raise Problem(503, "campaigns are not available yet")
    return ctx


Ctx = Annotated[CampaignContext, Depends(context)]


async def caller(who: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Campaigns and the address book are for owners, admins and API keys, not agents."""
    if who.is_agent:
        raise Problem(403, "agents cannot manage campaigns or the address book")
    return who


Who = Annotated[Principal, Depends(caller)]
