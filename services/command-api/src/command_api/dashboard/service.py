"""Dashboards: date ranges in the tenant's time zone over the analytics windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from command_api.address_book.repository import AddressBookRepository
from command_api.dashboard import schemas as s
from command_api.dashboard.repository import DashboardRepository
from command_api.shared.problems import Problem


def _totals(r: asyncpg.Record) -> s.Totals:
    return s.Totals(sent=r["sent"], delivered=r["delivered"], read=r["read"], failed=r["failed"])


class DashboardService:
    def __init__(self, repo: DashboardRepository, book: AddressBookRepository) -> None:
        self.repo = repo
        self.book = book

    async def zone(self, tenant_id: str, tz: str | None) -> tuple[str, ZoneInfo]:
        name = tz or (await self.book.tenant_settings(tenant_id))[1]
        try:
            return name, ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise Problem(422, f"unknown time zone {name[:64]!r}") from exc

    @staticmethod
    def bound(value: str | None, zone: ZoneInfo, default: datetime, end: bool = False) -> datetime:
        """``from``/``to``: a date (local midnight; ``to`` is inclusive) or a date-time."""
        if not value:
            return default
        try:
            if len(value) == 10:
                day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta())
                return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise Problem(422, "from/to must be ISO dates (YYYY-MM-DD) or date-times") from exc
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)

    async def range(self, tenant_id: str, tz: str | None, start: str | None,
                    end: str | None) -> tuple[str, ZoneInfo, datetime, datetime]:
        name, zone = await self.zone(tenant_id, tz)
        now = datetime.now(UTC)
        lo = self.bound(start, zone, now - timedelta(days=30))
        hi = self.bound(end, zone, now + timedelta(hours=1), end=True)
        if hi <= lo:
            raise Problem(422, "'to' must be after 'from'")
        return name, zone, lo, hi

    async def summary(self, tenant_id: str, tz: str | None, start: str | None, end: str | None) -> s.Summary:
        name, _, lo, hi = await self.range(tenant_id, tz, start, end)
        totals = _totals(await self.repo.totals(tenant_id, lo, hi))
        # A read message was delivered first, and the analytics count it in both: reached is the larger.
        reached = min(max(totals.delivered, totals.read), totals.sent)
        return s.Summary(range_start=lo.isoformat(), range_end=hi.isoformat(), timezone=name, totals=totals,
                         campaigns=await self.repo.campaigns(tenant_id, lo, hi),
                         delivery_rate=round(reached / totals.sent, 4) if totals.sent else 0.0,
                         read_rate=round(totals.read / totals.sent, 4) if totals.sent else 0.0)

    async def timeline(self, tenant_id: str, interval: str, tz: str | None, start: str | None,
                       end: str | None) -> s.Timeline:
        name, zone, lo, hi = await self.range(tenant_id, tz, start, end)
        rows = await self.repo.timeline(tenant_id, interval, name, lo, hi)
        return s.Timeline(interval=interval, timezone=name, points=[
            s.Point(period=r["period"].replace(tzinfo=zone).isoformat(), totals=_totals(r)) for r in rows])

    async def breakdown(self, tenant_id: str, dim: str, tz: str | None, start: str | None, end: str | None,
                        limit: int) -> s.Breakdown:
        name, _, lo, hi = await self.range(tenant_id, tz, start, end)
        rows = await self.repo.breakdown(tenant_id, dim, lo, hi, limit)
        def label(key: str) -> str:
            return key or "Sin grupo" if dim == "group" else key

        return s.Breakdown(timezone=name, items=[s.Slice(key=label(r["key"]), totals=_totals(r)) for r in rows])

    async def current_month(self, tenant_id: str, tz: str | None) -> s.Timeline:
        name, zone = await self.zone(tenant_id, tz)
        local = datetime.now(zone)
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return await self.timeline(tenant_id, "day", name, first.isoformat(), None)

    async def monthly(self, tenant_id: str, tz: str | None, months: int) -> s.Timeline:
        name, zone = await self.zone(tenant_id, tz)
        local = datetime.now(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = local.year, local.month - (months - 1)
        while month <= 0:
            month += 12
            year -= 1
        return await self.timeline(tenant_id, "month", name, local.replace(year=year, month=month).isoformat(), None)
