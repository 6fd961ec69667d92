"""Suppression list use cases."""

from __future__ import annotations

from command_api.address_book.csvparse import InvalidPhone, normalize
from command_api.address_book.repository import AddressBookRepository
from command_api.shared.problems import Problem
from command_api.suppressions import schemas as s
from command_api.suppressions.repository import SuppressionRepository


class SuppressionService:
    def __init__(self, repo: SuppressionRepository, book: AddressBookRepository) -> None:
        self.repo = repo
        self.book = book

    async def _phone(self, tenant_id: str, raw: str) -> str:
        country, _, _ = await self.book.tenant_settings(tenant_id)
        try:
            return normalize(raw, country)
        except InvalidPhone as exc:
            raise Problem(422, f"invalid phone number: {exc}") from exc

    async def add(self, tenant_id: str, body: s.SuppressionIn) -> s.SuppressionOut:
        row = await self.repo.add(tenant_id, await self._phone(tenant_id, body.phone), body.reason)
        return s.SuppressionOut(phone=row["phone"], reason=row["reason"], source=row["source"],
                                created_at=row["created_at"].isoformat())

    async def remove(self, tenant_id: str, phone: str) -> None:
        if not await self.repo.remove(tenant_id, await self._phone(tenant_id, phone)):
            raise Problem(404, "number is not on the suppression list")

    async def page(self, tenant_id: str, cursor: str | None, limit: int) -> s.SuppressionPage:
        rows = await self.repo.page(tenant_id, cursor, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return s.SuppressionPage(
            suppressions=[s.SuppressionOut(phone=r["phone"], reason=r["reason"], source=r["source"],
                                           created_at=r["created_at"].isoformat()) for r in rows],
            next_cursor=rows[-1]["phone"] if more and rows else None)
