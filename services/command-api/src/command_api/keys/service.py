"""Machine keys: created by the owner or an admin, shown once, optionally scoped to sessions, revocable."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from command_api.identity.repository import IdentityRepository
from command_api.keys.repository import KeysRepository
from command_api.shared import outbox
from command_api.shared.problems import Problem
from command_api.shared.security import require_admin
from zapstream_platform import apikeys
from zapstream_platform.tokens import Principal


class KeysService:
    def __init__(self, repo: KeysRepository, tx: IdentityRepository,
                 evict: Callable[[str], None] = lambda tenant_id: None) -> None:
        self.repo = repo
        self.tx = tx
        self.evict = evict

    async def create(self, who: Principal, name: str, session_ids: list[str] | None) -> dict[str, Any]:
        require_admin(who)
        scope: list[str] | None = None
        if session_ids is not None:
            try:
                ids = sorted({uuid.UUID(s) for s in session_ids})
            except ValueError as exc:
                raise Problem(422, "sessionIds must be session ids") from exc
            if await self.repo.owned_sessions(who.tenant_id, ids) != len(ids):
                raise Problem(404, "session not found")
            scope = [str(s) for s in ids]
        key = apikeys.new_key()
        async with self.tx.transaction() as conn:
            view = await self.repo.create(conn, who.tenant_id, name, key, scope, who.user_id)
            await outbox.record(conn, "apikey.created", who.tenant_id,
                                {"keyId": view["id"], "name": name, "sessionIds": scope, "by": who.user_id})
        return view | {"key": key}

    async def list(self, who: Principal) -> list[dict[str, Any]]:
        require_admin(who)
        return await self.repo.list(who.tenant_id)

    async def revoke(self, who: Principal, key_id: str) -> None:
        require_admin(who)
        async with self.tx.transaction() as conn:
            if not await self.repo.revoke(conn, who.tenant_id, key_id):
                raise Problem(404, "API key not found")
            await outbox.record(conn, "apikey.revoked", who.tenant_id, {"keyId": key_id, "by": who.user_id})
        self.evict(who.tenant_id)
