"""Campaigns' SQL: sessions and suppressions to check at creation, and the campaign read model."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg


class CampaignRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def sessions(self, tenant_id: str, ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
        """The tenant's sessions among ``ids`` (all its connected ones when ``ids`` is empty), oldest first."""
        return list(await self.pool.fetch(
            """SELECT r.id, r.created_at, s.status FROM session_registry r LEFT JOIN rm_sessions s ON s.id = r.id
               WHERE r.tenant_id = $1 AND (cardinality($2::uuid[]) > 0 AND r.id = ANY($2::uuid[])
                     OR cardinality($2::uuid[]) = 0 AND s.status = 'connected')
               ORDER BY r.created_at, r.id""", tenant_id, list(ids)))

    async def suppressed(self, tenant_id: str, phones: Sequence[str]) -> dict[str, str]:
        rows = await self.pool.fetch(
            "SELECT phone, reason FROM suppressions WHERE tenant_id = $1 AND phone = ANY($2::text[])",
            tenant_id, list(phones))
        return {r["phone"]: r["reason"] for r in rows}

    async def open_ids(self, tenant_id: str, terminal: Sequence[str]) -> list[uuid.UUID]:
        """The tenant's campaigns not finished yet (a tenant's deletion cancels them)."""
        rows = await self.pool.fetch("SELECT id FROM campaigns WHERE tenant_id = $1 AND status <> ALL($2::text[])",
                                     tenant_id, list(terminal))
        return [r["id"] for r in rows]

    async def get(self, tenant_id: str, campaign_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM campaigns WHERE tenant_id = $1 AND id = $2",
                                        tenant_id, campaign_id)

    async def page(self, tenant_id: str, status: str | None, before: tuple[datetime, uuid.UUID] | None,
                   limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            """SELECT * FROM campaigns WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)
                 AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
               ORDER BY created_at DESC, id DESC LIMIT $5""",
            tenant_id, status, before[0] if before else None, before[1] if before else None, limit))

    async def recipients(self, tenant_id: str, campaign_id: uuid.UUID, status: str | None, after: int,
                         limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            """SELECT * FROM campaign_recipients WHERE campaign_id = $1 AND tenant_id = $2
                 AND ($3::text IS NULL OR status = $3) AND seq > $4
               ORDER BY seq LIMIT $5""", campaign_id, tenant_id, status, after, limit))
