"""Sessions' SQL: the registry (written when a create is accepted), the read model, command outcomes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
import orjson

from zapstream_platform import readmodels
from zapstream_platform.readmodels import session_view


class SessionsRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def register(self, tenant_id: str) -> str:
        session_id = uuid.uuid4()
        await self.pool.execute("INSERT INTO session_registry (id, tenant_id) VALUES ($1, $2)", session_id, tenant_id)
        return str(session_id)

    async def declare(self, tenant_id: str, name: str) -> tuple[str, bool, str | None]:
        """The declared session ``name`` of the tenant, registered on first sight: (id, created now, status)."""
        return await readmodels.declare_session(self.pool, tenant_id, name)

    async def mark_deleted(self, tenant_id: str, session_id: str) -> None:
        await self.pool.execute(
            "UPDATE session_registry SET deleted_at = coalesce(deleted_at, now()) WHERE id = $1 AND tenant_id = $2",
            uuid.UUID(session_id), tenant_id)

    async def owner_of(self, session_id: uuid.UUID) -> tuple[str, bool] | None:
        row = await self.pool.fetchrow(
            """SELECT r.tenant_id, r.deleted_at IS NOT NULL OR coalesce(s.status = 'deleted', false) AS deleted
               FROM session_registry r LEFT JOIN rm_sessions s ON s.id = r.id WHERE r.id = $1""", session_id)
        return None if row is None else (str(row["tenant_id"]), bool(row["deleted"]))

    async def latest_session(self, tenant_id: str, scope: Iterable[str] | None) -> str | None:
        """The tenant's latest live session (in ``scope`` when given): the one query, shared with the gateway."""
        found = await readmodels.latest_session(self.pool, tenant_id, scope)
        return None if found is None else found[0]

    async def declared_session(self, tenant_id: str, name: str) -> str | None:
        sid = await self.pool.fetchval(
            "SELECT session_id FROM declared_sessions WHERE tenant_id = $1 AND name = $2", tenant_id, name)
        return None if sid is None else str(sid)

    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT s.* FROM rm_sessions s JOIN session_registry r ON r.id = s.id
               WHERE s.tenant_id = $1 AND s.status <> 'deleted' AND r.deleted_at IS NULL
               ORDER BY s.created_at DESC""",
            tenant_id,
        )
        return [session_view(r) for r in rows]

    async def get(self, tenant_id: str, session_id: str) -> dict[str, Any] | None:
        """A live session's view; None when missing, another tenant's, not projected yet, or deleted."""
        row = await self.pool.fetchrow(
            """SELECT s.* FROM rm_sessions s JOIN session_registry r ON r.id = s.id
               WHERE s.tenant_id = $1 AND s.id = $2 AND s.status <> 'deleted' AND r.deleted_at IS NULL""",
            tenant_id, uuid.UUID(session_id)
        )
        return None if row is None else session_view(row)

    async def command(self, tenant_id: str, command_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM rm_commands WHERE tenant_id = $1 AND command_id = $2", tenant_id, command_id
        )
        if row is None:
            return None
        return {
            "commandId": row["command_id"], "sessionId": str(row["session_id"]), "type": row["command_type"],
            "status": row["status"], "code": row["code"], "reason": row["reason"],
            "result": orjson.loads(row["result"]) if row["result"] else {}, "finishedAt": row["finished_at"],
        }
