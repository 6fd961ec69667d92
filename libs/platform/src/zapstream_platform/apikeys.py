"""Tenant API keys: shown once, stored as a SHA-256 digest, compared in constant time by lookup."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

PREFIX = "zs_live_"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


async def create_key(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, name: str, key: str | None = None) -> str:
    """Store a key for ``tenant_id`` and return its clear text (the only time it exists)."""
    key = key or new_key()
    await conn.execute(
        "INSERT INTO tenants(id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id
    )
    await conn.execute(
        "INSERT INTO api_keys(key_hash, tenant_id, name) VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING",
        digest(key),
        tenant_id,
        name,
    )
    return key


async def tenant_for(conn: asyncpg.Pool, key: str) -> str | None:
    """The tenant owning ``key``, or ``None``.

    The lookup is by digest, so timing depends on the hash, never on how much
    of the clear key matched.
    """
    if not key or len(key) > 256:
        return None
    row = await conn.fetchrow(
        "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest(key)
    )
    return None if row is None else str(row["tenant_id"])
