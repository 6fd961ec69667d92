"""Messages' SQL: the read model's text of a message (for forwards)."""

from __future__ import annotations

import uuid

import asyncpg


class MessagesRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def message_text(self, tenant_id: str, session_id: str, message_id: str) -> tuple[bool, str | None]:
        """(found and not deleted, its text)."""
        row = await self.pool.fetchrow(
            "SELECT text, is_deleted FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
            tenant_id, uuid.UUID(session_id), message_id,
        )
        if row is None or row["is_deleted"]:
            return False, None
        return True, None if row["text"] is None else str(row["text"])
