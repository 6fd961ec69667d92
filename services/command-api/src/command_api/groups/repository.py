"""Groups' SQL: the ``rm_groups`` read model, always filtered by tenant and session."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson


def group_view(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["jid"], "sessionId": str(r["session_id"]), "subject": r["subject"], "owner": r["owner"],
            "creation": r["creation"], "desc": r["description"], "announce": r["announce"],
            "restrict": r["restrict"], "size": r["size"], "participants": orjson.loads(r["participants"]),
            "left": r["left_at"] is not None}


class GroupsRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def groups(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT *, participants::text AS participants FROM rm_groups
               WHERE tenant_id = $1 AND session_id = $2 ORDER BY left_at NULLS FIRST, subject, jid LIMIT 1000""",
            tenant_id, uuid.UUID(session_id))
        return [group_view(r) for r in rows]

    async def group(self, tenant_id: str, session_id: str, jid: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            """SELECT *, participants::text AS participants FROM rm_groups
               WHERE tenant_id = $1 AND session_id = $2 AND jid = $3""", tenant_id, uuid.UUID(session_id), jid)
        return None if row is None else group_view(row)
