"""API keys' SQL (through :mod:`zapstream_platform.apikeys`, which the CLI shares)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from command_api.identity.repository import Conn
from zapstream_platform import apikeys


class KeysRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def owned_sessions(self, tenant_id: str, ids: list[uuid.UUID]) -> int:
        return int(await self.pool.fetchval(
            "SELECT count(*) FROM session_registry WHERE tenant_id = $1 AND id = ANY($2::uuid[])", tenant_id, ids))

    async def create(self, conn: Conn, tenant_id: str, name: str, key: str, scope: list[str] | None,
                     created_by: str | None) -> dict[str, Any]:
        await apikeys.create_key(conn, tenant_id, name, key=key, session_ids=scope, created_by=created_by)
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", apikeys.digest(key))
        assert row is not None
        return apikeys.view(row)

    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        return await apikeys.list_keys(self.pool, tenant_id)

    async def revoke(self, conn: Conn, tenant_id: str, key_id: str) -> bool:
        return await apikeys.revoke(conn, tenant_id, key_id)
