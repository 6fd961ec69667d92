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


async def declare_session(pool: asyncpg.Pool, tenant_id: str, name: str) -> tuple[str, bool, str | None]:
    """The session named ``name`` of the tenant, registered on first sight: (id, created now, status).

    Seed 002 addresses sessions by name (the sessions file, ``/ws/session/{name}``, send-pdf); the
    command API and the gateway both create them through this one query, under one advisory lock per
    (tenant, name), so two first callers get the same session.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", tenant_id, name)
        sid = await conn.fetchval("SELECT session_id FROM declared_sessions WHERE tenant_id = $1 AND name = $2",
                                  tenant_id, name)
        created = sid is None
        if created:
            sid = uuid.uuid4()
            await conn.execute("INSERT INTO session_registry (id, tenant_id) VALUES ($1, $2)", sid, tenant_id)
            await conn.execute("INSERT INTO declared_sessions (tenant_id, name, session_id) VALUES ($1, $2, $3)",
                               tenant_id, name, sid)
        status = await conn.fetchval("SELECT status FROM rm_sessions WHERE id = $1", sid)
    return str(sid), created, None if status is None else str(status)


async def session_by_name_or_id(pool: asyncpg.Pool, tenant_id: str,
                                name_or_id: str) -> tuple[str, dict[str, Any] | None, bool] | None:
    """A live session of the tenant by id or declared name: (id, read-model view or None, deleted)."""
    try:
        sid: uuid.UUID | None = uuid.UUID(name_or_id)
    except ValueError:
        sid = None
    if sid is None or not await pool.fetchval(
            "SELECT true FROM session_registry WHERE id = $1 AND tenant_id = $2", sid, tenant_id):
        sid = await pool.fetchval("SELECT session_id FROM declared_sessions WHERE tenant_id = $1 AND name = $2",
                                  tenant_id, name_or_id)
    if sid is None:
        return None
    row = await pool.fetchrow(
        """SELECT r.id AS registry_id, r.deleted_at IS NOT NULL AS gone, s.* FROM session_registry r
           LEFT JOIN rm_sessions s ON s.id = r.id WHERE r.id = $1""", sid)
    if row is None:
        return None
    deleted = bool(row["gone"]) or row["status"] == "deleted"
    return str(row["registry_id"]), (None if row["id"] is None else session_view(row)), deleted
