"""Media's SQL: the ``media_uploads`` rows of each tenant."""

from __future__ import annotations

import uuid

import asyncpg

from command_api.media.service import Upload


def _row(r: asyncpg.Record) -> Upload:
    return Upload(id=str(r["id"]), tenant_id=r["tenant_id"], session_id=str(r["session_id"]) if r["session_id"]
                  else None, kind=r["kind"], mime=r["mime"], size=r["size"], file_name=r["file_name"], key=r["key"],
                  width=r["width"], height=r["height"], duration=r["duration"])


class MediaRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, u: Upload) -> None:
        await self.pool.execute(
            """INSERT INTO media_uploads (id, tenant_id, session_id, kind, mime, size, file_name, key,
                                          width, height, duration)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            uuid.UUID(u.id), u.tenant_id, uuid.UUID(u.session_id) if u.session_id else None, u.kind,
            u.mime, u.size, u.file_name, u.key, u.width, u.height, u.duration,
        )

    async def delete(self, tenant_id: str, media_id: uuid.UUID) -> str | None:
        key = await self.pool.fetchval("DELETE FROM media_uploads WHERE id = $1 AND tenant_id = $2 RETURNING key",
                                       media_id, tenant_id)
        return None if key is None else str(key)

    async def by_id(self, tenant_id: str, media_id: uuid.UUID) -> Upload | None:
        r = await self.pool.fetchrow("SELECT * FROM media_uploads WHERE id = $1 AND tenant_id = $2", media_id,
                                     tenant_id)
        return None if r is None else _row(r)

    async def by_key(self, tenant_id: str, key: str) -> Upload | None:
        r = await self.pool.fetchrow("SELECT * FROM media_uploads WHERE key = $1 AND tenant_id = $2", key, tenant_id)
        return None if r is None else _row(r)
