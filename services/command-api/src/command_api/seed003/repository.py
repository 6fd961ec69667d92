"""Seed 003's own SQL: a message's media, always filtered by tenant and session."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


class Seed003Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def message_media(self, tenant_id: str, session_id: str, message_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            """SELECT chat_jid, media FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND id = $3
               LIMIT 1""", tenant_id, uuid.UUID(session_id), message_id)
        return None if row is None else dict(row)
