"""Profile photos: ``GET /chats/{jid}/photo`` (and seed 003's ``/api/media/profile-photo/{chatId}``).

The cache is the object key itself: ``…/photos/{jid}/{window}.jpg`` with ``window = now // ttl``, so a
photo is fetched through the runner (``session.profile_photo.fetch``) at most once per window and per
session, and a new window simply misses. A chat without a photo is not cached (asked again next time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from command_api.shared.access import Access
from command_api.shared.commands import Commands
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from zapstream_contracts import commands as c
from zapstream_platform.tokens import Principal


class ObjectStore(Protocol):
    async def head(self, key: str) -> Any | None: ...
    def url(self, key: str, ttl_s: int | None = None, file_name: str | None = None) -> str: ...


class OutcomeStore(Protocol):
    async def command(self, tenant_id: str, command_id: str) -> dict[str, Any] | None: ...


class PhotosService:
    def __init__(self, store: ObjectStore, outcomes: OutcomeStore, access: Access, commands: Commands,
                 ttl_s: int = 24 * 3600, polls: int = 100, poll_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.outcomes = outcomes
        self.access = access
        self.commands = commands
        self.ttl_s = ttl_s
        self.polls = polls
        self.poll_interval_s = poll_interval_s
        self.clock = clock

    def key(self, tenant_id: str, session_id: str, jid: str) -> str:
        window = int(self.clock() // self.ttl_s)
        return f"tenants/{tenant_id}/sessions/{session_id}/photos/{quote(jid, safe='@.')}/{window}.jpg"

    async def photo(self, who: Principal, jid: str, session_id: str | None) -> dict[str, Any]:
        await self.access.chat(who, jid)
        sid = await self.access.session_or_404(who, session_id)
        key = self.key(who.tenant_id, sid, jid)
        answer = {"chatJid": jid, "sessionId": sid}
        if await self.store.head(key) is not None:
            return answer | {"url": self.store.url(key), "cached": True}
        accepted, _ = await self.commands.accept(who, Idem(None), None, c.FetchProfilePhoto, sid, jid=jid, key=key)
        for _ in range(self.polls):  # the outcome comes back through Kafka and the projector
            outcome = await self.outcomes.command(who.tenant_id, accepted["commandId"])
            if outcome is not None:
                if outcome["status"] == "failed":
                    raise Problem(409, outcome["reason"] or "WhatsApp refused", code=outcome["code"])
                stored = outcome["result"].get("key")
                return answer | {"url": self.store.url(stored) if stored else None, "cached": False}
            await asyncio.sleep(self.poll_interval_s)
        raise Problem(503, "the session's runner did not answer in time; retry", headers={"Retry-After": "1"})
