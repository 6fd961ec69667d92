"""Seed 003's own SQL: a message's media and a chat's photo, always filtered by tenant and session."""

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

    async def contact_photo(self, tenant_id: str, session_id: str, jid: str) -> tuple[bool, str | None]:
        """(the chat or contact is known, its photo URL)."""
        row = await self.pool.fetchrow(
            """SELECT c.img_url, (c.jid IS NOT NULL OR h.jid IS NOT NULL) AS known
               FROM (SELECT 1) one
               LEFT JOIN rm_contacts c ON c.tenant_id = $1 AND c.session_id = $2 AND c.jid = $3
               LEFT JOIN rm_chats h ON h.tenant_id = $1 AND h.session_id = $2 AND h.jid = $3""",
            tenant_id, uuid.UUID(session_id), jid)
        return (bool(row["known"]), row["img_url"]) if row is not None else (False, None)
