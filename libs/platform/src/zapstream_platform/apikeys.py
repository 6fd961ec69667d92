"""API keys for machines: shown once, stored as a SHA-256 digest, optionally scoped to sessions, revocable.

A key is high-entropy (256 random bits), so a fast digest is enough; the
lookup is by digest, so timing depends on the hash, never on how much of the
clear key matched.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

PREFIX = "zs_live_"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    tenant_id: str
    session_ids: frozenset[str] | None  # None: every session of the tenant


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


async def create_key(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, name: str, key: str | None = None,
                     session_ids: list[str] | None = None, created_by: str | None = None) -> str:
    """Store a key for ``tenant_id`` and return its clear text (the only time it exists)."""
    key = key or new_key()
    await conn.execute("INSERT INTO tenants(id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id)
    await conn.execute(
        """INSERT INTO api_keys(key_hash, tenant_id, name, session_ids, created_by, last4)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_hash) DO NOTHING""",
        digest(key), tenant_id, name,
        None if session_ids is None else [uuid.UUID(s) for s in session_ids],
        None if created_by is None else uuid.UUID(created_by), key[-4:],
    )
    return key


async def lookup(conn: asyncpg.Pool | asyncpg.Connection, key: str) -> KeyInfo | None:
    if not key or len(key) > 256:
        return None
    row = await conn.fetchrow(
        "SELECT id, tenant_id, session_ids FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest(key)
    )
    if row is None:
        return None
    scope = None if row["session_ids"] is None else frozenset(str(s) for s in row["session_ids"])
    return KeyInfo(str(row["id"]), str(row["tenant_id"]), scope)


async def tenant_for(conn: asyncpg.Pool, key: str) -> str | None:
    """The tenant owning ``key``, or ``None``."""
    info = await lookup(conn, key)
    return None if info is None else info.tenant_id


def view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]), "name": row["name"], "last4": row["last4"],
        "sessionIds": None if row["session_ids"] is None else [str(s) for s in row["session_ids"]],
        "createdAt": row["created_at"].isoformat(),
        "revokedAt": row["revoked_at"].isoformat() if row["revoked_at"] else None,
        "createdBy": str(row["created_by"]) if row["created_by"] else None,
    }


async def list_keys(conn: asyncpg.Pool, tenant_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id
    )
    return [view(r) for r in rows]


async def revoke(conn: asyncpg.Pool, tenant_id: str, key_id: str) -> bool:
    """Revoke one of the tenant's keys; ``False`` when there is no such key (or it is another tenant's)."""
    try:
        kid = uuid.UUID(key_id)
    except ValueError:
        return False
    row = await conn.fetchrow(
        """UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
           WHERE id = $1 AND tenant_id = $2 RETURNING id""",
        kid, tenant_id,
    )
    return row is not None
