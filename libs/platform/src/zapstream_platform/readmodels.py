"""Row → JSON views of the read models, shared by the query API and the WebSocket snapshot."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg


def session_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]), "tenantId": r["tenant_id"], "name": r["name"], "status": r["status"],
        "phone": r["phone"], "qr": r["qr"], "qrExpiresAt": r["qr_expires_at"], "connectedAt": r["connected_at"],
        "disconnectedAt": r["disconnected_at"], "disconnectedReason": r["disconnected_reason"],
        "createdAt": r["created_at"], "updatedAt": r["updated_at"],
    }


async def latest_session(pool: asyncpg.Pool, tenant_id: str,
                         session_ids: Iterable[str] | None = None) -> tuple[str, dict[str, Any] | None] | None:
    """The tenant's most recently created session that is not deleted, limited to ``session_ids`` when given.

    The one query for "the tenant's latest session" (the command API's default session, the
    WebSocket snapshot). Returns (session id, its read-model view or None when not projected yet).
    The registry is written when ``POST /sessions`` is accepted, so a session counts before the
    projector has seen it; a DELETE counts at once (``deleted_at``), before the projector too.
    """
    scope = None if session_ids is None else [uuid.UUID(s) for s in session_ids]
    row = await pool.fetchrow(
        """SELECT r.id AS registry_id, s.* FROM session_registry r LEFT JOIN rm_sessions s ON s.id = r.id
           WHERE r.tenant_id = $1 AND r.deleted_at IS NULL AND coalesce(s.status, 'created') <> 'deleted'
             AND ($2::uuid[] IS NULL OR r.id = ANY($2::uuid[]))
           ORDER BY r.created_at DESC LIMIT 1""",
        tenant_id, scope,
    )
    if row is None:
        return None
    return str(row["registry_id"]), (None if row["id"] is None else session_view(row))
