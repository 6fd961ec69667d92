"""Chats' SQL: the chat, message, reaction and contact read models (always filtered by tenant)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


class ChatsRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def chats(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT * FROM rm_chats WHERE tenant_id = $1 AND session_id = $2
               ORDER BY last_message_at DESC, jid LIMIT 500""",
            tenant_id, uuid.UUID(session_id),
        )
        return [dict(r) for r in rows]

    async def messages(self, tenant_id: str, session_id: str, chat_jid: str, limit: int,
                       before: tuple[int, int] | None) -> list[dict[str, Any]]:
        """Up to ``limit`` messages older than ``before`` (ts, seq), newest first."""
        args: list[Any] = [tenant_id, uuid.UUID(session_id), chat_jid, limit]
        where = ""
        if before is not None:
            where = "AND (ts, seq) < ($5, $6)"
            args += list(before)
        rows = await self.pool.fetch(
            f"""SELECT * FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND chat_jid = $3 {where}
                ORDER BY ts DESC, seq DESC LIMIT $4""",
            *args,
        )
        return [dict(r) for r in rows]

    async def reactions(self, session_id: str, message_ids: list[str]) -> list[dict[str, Any]]:
        """Reactions of the messages aggregated by emoji, in the order they first appeared."""
        rows = await self.pool.fetch(
            """SELECT message_id, emoji, count(*) AS n, array_agg(actor_jid ORDER BY reacted_at, actor_jid) AS actors
               FROM rm_reactions WHERE session_id = $1 AND message_id = ANY($2::text[])
               GROUP BY message_id, emoji ORDER BY message_id, min(reacted_at), emoji""",
            uuid.UUID(session_id), message_ids,
        )
        return [dict(r) for r in rows]

    async def contacts(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM rm_contacts WHERE tenant_id = $1 AND session_id = $2 ORDER BY jid LIMIT 5000",
            tenant_id, uuid.UUID(session_id),
        )
        return [dict(r) for r in rows]
