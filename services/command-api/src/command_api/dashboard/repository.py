"""The dashboards' SQL over ``analytics_buckets`` (written by services/analytics) and ``campaigns``."""

from __future__ import annotations

from datetime import datetime

import asyncpg

SUMS = "coalesce(sum(sent),0) AS sent, coalesce(sum(delivered),0) AS delivered, coalesce(sum(read),0) AS read, " \
       "coalesce(sum(failed),0) AS failed"


class DashboardRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def totals(self, tenant_id: str, start: datetime, end: datetime) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            f"""SELECT {SUMS} FROM analytics_buckets WHERE tenant_id = $1 AND grain = 'hour' AND dim = 'all'
                AND bucket >= $2 AND bucket < $3""", tenant_id, start, end)
        assert row is not None
        return row

    async def campaigns(self, tenant_id: str, start: datetime, end: datetime) -> int:
        return int(await self.pool.fetchval(
            "SELECT count(*) FROM campaigns WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3",
            tenant_id, start, end))

    async def timeline(self, tenant_id: str, interval: str, tz: str, start: datetime,
                       end: datetime) -> list[asyncpg.Record]:
        # Hour windows regrouped into the tenant's local hours, days or months.
        return list(await self.pool.fetch(
            f"""SELECT date_trunc($2, bucket AT TIME ZONE $3) AS period, {SUMS}
                FROM analytics_buckets WHERE tenant_id = $1 AND grain = 'hour' AND dim = 'all'
                  AND bucket >= $4 AND bucket < $5
                GROUP BY 1 ORDER BY 1""", tenant_id, interval, tz, start, end))

    async def breakdown(self, tenant_id: str, dim: str, start: datetime, end: datetime,
                        limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            f"""SELECT key, {SUMS} FROM analytics_buckets
                WHERE tenant_id = $1 AND grain = 'hour' AND dim = $2 AND bucket >= $3 AND bucket < $4
                GROUP BY key ORDER BY sum(sent) DESC, key LIMIT $5""", tenant_id, dim, start, end, limit))
