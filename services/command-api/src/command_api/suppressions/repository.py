"""The suppression list's SQL. Opt-outs by reply are written by the campaign projection; manual ones here."""

from __future__ import annotations

import asyncpg


class SuppressionRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, tenant_id: str, phone: str, reason: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            """INSERT INTO suppressions (tenant_id, phone, reason, source) VALUES ($1, $2, $3, 'manual')
               ON CONFLICT (tenant_id, phone) DO UPDATE SET reason = suppressions.reason RETURNING *""",
            tenant_id, phone, reason)
        assert row is not None
        return row

    async def remove(self, tenant_id: str, phone: str) -> bool:
        done = await self.pool.execute("DELETE FROM suppressions WHERE tenant_id = $1 AND phone = $2", tenant_id, phone)
        return bool(done.endswith(" 1"))

    async def page(self, tenant_id: str, after: str | None, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            """SELECT * FROM suppressions WHERE tenant_id = $1 AND ($2::text IS NULL OR phone > $2)
               ORDER BY phone LIMIT $3""", tenant_id, after, limit))
