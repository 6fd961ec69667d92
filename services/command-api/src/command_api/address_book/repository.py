"""The address book's SQL (and nothing else does SQL for it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from command_api.address_book.csvparse import Row

DEFAULT_COUNTRY = 595
DEFAULT_TIMEZONE = "America/Asuncion"


class AddressBookRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def tenant_settings(self, tenant_id: str) -> tuple[int, str, list[str]]:
        row = await self.pool.fetchrow(
            "SELECT default_country, timezone, optout_keywords FROM campaign_tenant_settings WHERE tenant_id = $1",
            tenant_id)
        if row is None:
            return DEFAULT_COUNTRY, DEFAULT_TIMEZONE, []
        return int(row["default_country"]), str(row["timezone"]), list(row["optout_keywords"])

    async def save_tenant_settings(self, tenant_id: str, country: int, timezone: str, words: list[str]) -> None:
        await self.pool.execute(
            """INSERT INTO campaign_tenant_settings (tenant_id, default_country, timezone, optout_keywords)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (tenant_id) DO UPDATE SET default_country = excluded.default_country,
                   timezone = excluded.timezone, optout_keywords = excluded.optout_keywords, updated_at = now()""",
            tenant_id, country, timezone, words)

    async def create(self, tenant_id: str, row: Row) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            """INSERT INTO address_book_contacts (id, tenant_id, phone, nombre, sustantivo, grupo)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, phone) DO NOTHING RETURNING *""",
            uuid.uuid4(), tenant_id, row.phone, row.nombre, row.sustantivo, row.grupo)

    async def update(self, tenant_id: str, contact_id: uuid.UUID, row: Row) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            """UPDATE address_book_contacts SET phone = $3, nombre = $4, sustantivo = $5, grupo = $6, updated_at = now()
               WHERE tenant_id = $1 AND id = $2 RETURNING *""",
            tenant_id, contact_id, row.phone, row.nombre, row.sustantivo, row.grupo)

    async def get(self, tenant_id: str, contact_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM address_book_contacts WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)

    async def delete(self, tenant_id: str, contact_id: uuid.UUID) -> bool:
        done = await self.pool.execute(
            "DELETE FROM address_book_contacts WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)
        return bool(done.endswith(" 1"))

    async def page(self, tenant_id: str, group: str | None, text: str | None, after: uuid.UUID | None,
                   limit: int) -> list[asyncpg.Record]:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if text else None
        pattern = f"%{escaped}%" if escaped else None
        return list(await self.pool.fetch(
            """SELECT * FROM address_book_contacts
               WHERE tenant_id = $1 AND ($2::text IS NULL OR grupo = $2)
                 AND ($3::text IS NULL OR nombre ILIKE $3 OR phone LIKE $3 OR sustantivo ILIKE $3)
                 AND ($4::uuid IS NULL OR id > $4)
               ORDER BY id LIMIT $5""", tenant_id, group, pattern, after, limit))

    async def groups(self, tenant_id: str) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            """SELECT grupo, count(*) AS contacts FROM address_book_contacts WHERE tenant_id = $1
               GROUP BY grupo ORDER BY grupo NULLS LAST""", tenant_id))

    async def selection(self, tenant_id: str, groups: Sequence[str], ids: Sequence[uuid.UUID],
                        everyone: bool) -> list[asyncpg.Record]:
        """Contacts picked by group or id, in a stable order (creation, then id)."""
        return list(await self.pool.fetch(
            """SELECT * FROM address_book_contacts
               WHERE tenant_id = $1 AND ($4 OR grupo = ANY($2::text[]) OR id = ANY($3::uuid[]))
               ORDER BY position""", tenant_id, list(groups), list(ids), everyone))

    # ----- imports ------------------------------------------------------------------

    async def start_import(self, tenant_id: str) -> uuid.UUID:
        import_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO address_book_imports (id, tenant_id, status) VALUES ($1, $2, 'running')", import_id, tenant_id)
        return import_id

    async def import_batch(self, tenant_id: str, import_id: uuid.UUID, rows: Sequence[Row], rows_read: int,
                           rejected: int, errors: list[dict[str, Any]]) -> int:
        """Upsert one batch (COPY into a temp table, then one INSERT … ON CONFLICT) and record progress."""
        latest = {r.phone: r for r in rows}  # a number twice in a batch: the later line wins
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """CREATE TEMP TABLE IF NOT EXISTS ab_import (line integer, phone text, nombre text, sustantivo text, grupo text)
                   ON COMMIT DELETE ROWS""")
            await conn.copy_records_to_table(
                "ab_import", records=[(r.line, r.phone, r.nombre, r.sustantivo, r.grupo) for r in latest.values()])
            await conn.execute(
                """INSERT INTO address_book_contacts (id, tenant_id, phone, nombre, sustantivo, grupo)
                   SELECT gen_random_uuid(), $1, phone, nombre, sustantivo, grupo FROM ab_import ORDER BY line
                   ON CONFLICT (tenant_id, phone) DO UPDATE SET nombre = excluded.nombre,
                       sustantivo = excluded.sustantivo, grupo = excluded.grupo, updated_at = now()""", tenant_id)
            await conn.execute(
                """UPDATE address_book_imports SET rows_read = $3, imported = imported + $4, rejected = $5,
                       errors = $6::jsonb WHERE tenant_id = $1 AND id = $2""",
                tenant_id, import_id, rows_read, len(latest), rejected, orjson.dumps(errors).decode())
        return len(latest)

    async def finish_import(self, tenant_id: str, import_id: uuid.UUID, status: str, rows_read: int, rejected: int,
                            errors: list[dict[str, Any]]) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            """UPDATE address_book_imports SET status = $3, rows_read = $4, rejected = $5, errors = $6::jsonb,
                   finished_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING *""",
            tenant_id, import_id, status, rows_read, rejected, orjson.dumps(errors).decode())
        assert row is not None
        return row

    async def get_import(self, tenant_id: str, import_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM address_book_imports WHERE tenant_id = $1 AND id = $2", tenant_id, import_id)

    async def imports(self, tenant_id: str) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            "SELECT * FROM address_book_imports WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 50", tenant_id))
