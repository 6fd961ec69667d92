"""Agents' SQL: the tenant's users other than the owner, their chat assignments, the commands they issued."""

from __future__ import annotations

import uuid

import asyncpg

from command_api.identity.repository import Conn


class AgentsRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def members(self, tenant_id: str) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            "SELECT * FROM users WHERE tenant_id = $1 AND role <> 'owner' ORDER BY created_at, id", tenant_id))

    async def member(self, conn: Conn | None, tenant_id: str, user_id: uuid.UUID,
                     lock: bool = False) -> asyncpg.Record | None:
        return await (conn or self.pool).fetchrow(
            f"SELECT * FROM users WHERE id = $1 AND tenant_id = $2 {'FOR UPDATE' if lock else ''}", user_id, tenant_id)

    async def set_disabled(self, conn: Conn, user_id: uuid.UUID, disabled: bool) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"UPDATE users SET disabled_at = {'coalesce(disabled_at, now())' if disabled else 'NULL'}, "
            "updated_at = now() WHERE id = $1 RETURNING *", user_id)
        assert row is not None
        return row

    async def assignments(self, user_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            "SELECT chat_jid, assigned_at FROM chat_assignments WHERE user_id = $1 ORDER BY chat_jid", user_id))

    async def assign(self, conn: Conn, tenant_id: str, user_id: uuid.UUID, chat: str,
                     by: uuid.UUID | None) -> bool:
        added = await conn.fetchval(
            """INSERT INTO chat_assignments (tenant_id, user_id, chat_jid, assigned_by) VALUES ($1, $2, $3, $4)
               ON CONFLICT DO NOTHING RETURNING true""", tenant_id, user_id, chat, by)
        return bool(added)

    async def unassign(self, conn: Conn, user_id: uuid.UUID, chat: str) -> bool:
        removed = await conn.fetchval(
            "DELETE FROM chat_assignments WHERE user_id = $1 AND chat_jid = $2 RETURNING true", user_id, chat)
        return bool(removed)

    # -- ChatGrants (what an agent may see and did) --

    async def assigned_chats(self, user_id: str) -> frozenset[str]:
        rows = await self.pool.fetch("SELECT chat_jid FROM chat_assignments WHERE user_id = $1", uuid.UUID(user_id))
        return frozenset(r["chat_jid"] for r in rows)

    async def message_chat(self, tenant_id: str, session_id: str, message_id: str) -> str | None:
        chat = await self.pool.fetchval(
            "SELECT chat_jid FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
            tenant_id, uuid.UUID(session_id), message_id)
        return None if chat is None else str(chat)

    async def record_issuer(self, command_id: str, user_id: str) -> None:
        await self.pool.execute(
            "INSERT INTO command_issuers (command_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            command_id, uuid.UUID(user_id))

    async def issued_by(self, command_id: str, user_id: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT true FROM command_issuers WHERE command_id = $1 AND user_id = $2", command_id, uuid.UUID(user_id)))
