"""Row → JSON views of the read models, shared by the query API and the WebSocket snapshot."""

from __future__ import annotations

from typing import Any

import asyncpg


def session_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]), "tenantId": r["tenant_id"], "name": r["name"], "status": r["status"],
        "phone": r["phone"], "qr": r["qr"], "qrExpiresAt": r["qr_expires_at"], "connectedAt": r["connected_at"],
        "disconnectedAt": r["disconnected_at"], "disconnectedReason": r["disconnected_reason"],
        "createdAt": r["created_at"], "updatedAt": r["updated_at"],
    }


async def latest_session(pool: asyncpg.Pool, tenant_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        """SELECT * FROM rm_sessions WHERE tenant_id = $1 AND status <> 'deleted'
           ORDER BY created_at DESC LIMIT 1""",
        tenant_id,
    )
    return None if row is None else session_view(row)
