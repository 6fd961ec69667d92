"""Address book use cases: contacts CRUD with normalised numbers, groups, streamed CSV imports."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from command_api.address_book import schemas as s
from command_api.address_book.csvparse import BadRow, InvalidPhone, Row, normalize, parse_stream
from command_api.address_book.repository import AddressBookRepository
from command_api.shared.problems import Problem

IMPORT_BATCH = 5000
MAX_REPORTED_ERRORS = 1000


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def contact_out(r: asyncpg.Record) -> s.ContactOut:
    return s.ContactOut(id=str(r["id"]), phone=r["phone"], numero=r["phone"], nombre=r["nombre"],
                        sustantivo=r["sustantivo"], grupo=r["grupo"], created_at=_iso(r["created_at"]) or "",
                        updated_at=_iso(r["updated_at"]) or "")


def import_out(r: asyncpg.Record) -> s.ImportOut:
    errors = orjson.loads(r["errors"]) if isinstance(r["errors"], str) else r["errors"]
    return s.ImportOut(import_id=str(r["id"]), status=r["status"], rows_read=r["rows_read"],
                       imported=r["imported"], rejected=r["rejected"],
                       errors=[s.RowError(**e) for e in errors], created_at=_iso(r["created_at"]) or "",
                       finished_at=_iso(r["finished_at"]))


def parse_id(value: str, what: str = "contact") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Problem(404, f"{what} not found") from exc


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(422, "invalid cursor") from exc


class AddressBookService:
    def __init__(self, repo: AddressBookRepository) -> None:
        self.repo = repo

    async def _row(self, tenant_id: str, body: s.ContactIn) -> Row:
        country, _, _ = await self.repo.tenant_settings(tenant_id)
        try:
            phone = normalize(body.phone, country)
        except InvalidPhone as exc:
            raise Problem(422, f"invalid phone number: {exc}") from exc
        return Row(0, phone, body.nombre, body.sustantivo, body.grupo)

    async def create(self, tenant_id: str, body: s.ContactIn) -> s.ContactOut:
        created = await self.repo.create(tenant_id, await self._row(tenant_id, body))
        if created is None:
            raise Problem(409, "a contact with this number already exists")
        return contact_out(created)

    async def update(self, tenant_id: str, contact_id: str, body: s.ContactIn) -> s.ContactOut:
        try:
            updated = await self.repo.update(tenant_id, parse_id(contact_id), await self._row(tenant_id, body))
        except asyncpg.UniqueViolationError as exc:
            raise Problem(409, "another contact has this number") from exc
        if updated is None:
            raise Problem(404, "contact not found")
        return contact_out(updated)

    async def get(self, tenant_id: str, contact_id: str) -> s.ContactOut:
        row = await self.repo.get(tenant_id, parse_id(contact_id))
        if row is None:
            raise Problem(404, "contact not found")
        return contact_out(row)

    async def delete(self, tenant_id: str, contact_id: str) -> None:
        if not await self.repo.delete(tenant_id, parse_id(contact_id)):
            raise Problem(404, "contact not found")

    async def page(self, tenant_id: str, group: str | None, text: str | None, cursor: str | None,
                   limit: int) -> s.ContactPage:
        after = parse_id(decode_cursor(cursor), "cursor") if cursor else None
        rows = await self.repo.page(tenant_id, group, text, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return s.ContactPage(contacts=[contact_out(r) for r in rows],
                             next_cursor=encode_cursor(str(rows[-1]["id"])) if more and rows else None)

    async def groups(self, tenant_id: str) -> s.Groups:
        return s.Groups(groups=[s.GroupCount(grupo=r["grupo"], contacts=r["contacts"])
                                for r in await self.repo.groups(tenant_id)])

    async def import_csv(self, tenant_id: str, chunks: AsyncIterator[bytes]) -> s.ImportOut:
        """Stream the CSV in, upserting every ``IMPORT_BATCH`` good rows; progress is the import row."""
        country, _, _ = await self.repo.tenant_settings(tenant_id)
        import_id = await self.repo.start_import(tenant_id)
        batch: list[Row] = []
        errors: list[dict[str, Any]] = []
        rows_read = rejected = 0
        try:
            async for item in parse_stream(chunks, country):
                rows_read += 1
                if isinstance(item, BadRow):
                    rejected += 1
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append({"line": item.line, "reason": item.reason})
                    continue
                batch.append(item)
                if len(batch) >= IMPORT_BATCH:
                    await self.repo.import_batch(tenant_id, import_id, batch, rows_read, rejected, errors)
                    batch = []
            if batch:
                await self.repo.import_batch(tenant_id, import_id, batch, rows_read, rejected, errors)
        except BaseException:
            await self.repo.finish_import(tenant_id, import_id, "failed", rows_read, rejected, errors)
            raise
        return import_out(await self.repo.finish_import(tenant_id, import_id, "done", rows_read, rejected, errors))

    async def get_import(self, tenant_id: str, import_id: str) -> s.ImportOut:
        row = await self.repo.get_import(tenant_id, parse_id(import_id, "import"))
        if row is None:
            raise Problem(404, "import not found")
        return import_out(row)

    async def imports(self, tenant_id: str) -> s.ImportList:
        return s.ImportList(imports=[import_out(r) for r in await self.repo.imports(tenant_id)])
