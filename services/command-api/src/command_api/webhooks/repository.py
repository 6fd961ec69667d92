"""The webhooks slice's SQL (the only SQL of the slice); every statement is scoped by tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

ENDPOINT_COLUMNS = """id, url, description, event_types, session_ids, status, disabled_reason,
                      CASE WHEN previous_expires_at > now() THEN previous_expires_at END AS previous_expires_at,
                      created_at, updated_at"""


class WebhooksRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def count(self, tenant_id: str) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", tenant_id))

    async def create(self, tenant_id: str, url: str, event_types: list[str], session_ids: list[str],
                     description: str | None, secret: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            f"""INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, session_ids, description, secret)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ENDPOINT_COLUMNS}""",
            uuid.uuid4(), tenant_id, url, event_types, session_ids, description, secret)
        assert row is not None
        return row

    async def all(self, tenant_id: str) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id",
            tenant_id))

    async def get(self, tenant_id: str, endpoint_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
            tenant_id, endpoint_id)

    async def update(self, tenant_id: str, endpoint_id: uuid.UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
        allowed = {"url", "event_types", "session_ids", "description"}
        cols = [c for c in changes if c in allowed]  # column names come from this fixed set only
        sets = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(cols))
        return await self.pool.fetchrow(
            f"""UPDATE webhook_endpoints SET {sets + ', ' if sets else ''}updated_at = now()
                WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}""",
            tenant_id, endpoint_id, *[changes[c] for c in cols])

    async def set_status(self, tenant_id: str, endpoint_id: uuid.UUID, status: str) -> asyncpg.Record | None:
        # Resuming also clears an automatic disable and its failure streak.
        return await self.pool.fetchrow(
            f"""UPDATE webhook_endpoints SET status = $3, updated_at = now(),
                       disabled_reason = CASE WHEN $3 = 'active' THEN NULL ELSE disabled_reason END,
                       consecutive_dead = CASE WHEN $3 = 'active' THEN 0 ELSE consecutive_dead END
                WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}""",
            tenant_id, endpoint_id, status)

    async def delete(self, tenant_id: str, endpoint_id: uuid.UUID) -> bool:
        deleted = await self.pool.fetchval(
            "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 RETURNING true", tenant_id, endpoint_id)
        return bool(deleted)

    async def rotate(self, tenant_id: str, endpoint_id: uuid.UUID, secret: str, grace_s: int) -> datetime | None:
        expires: datetime | None = await self.pool.fetchval(
            """UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
                      previous_expires_at = now() + make_interval(secs => $4), updated_at = now()
               WHERE tenant_id = $1 AND id = $2 RETURNING previous_expires_at""",
            tenant_id, endpoint_id, secret, float(grace_s))
        return expires

    async def deliveries(self, tenant_id: str, endpoint_id: uuid.UUID, status: str | None,
                         limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            """SELECT id, event_id, event_type, session_id, status, attempts, last_status_code, last_error,
                      last_attempt_at, CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at,
                      delivered_at, dead_at
               FROM webhook_deliveries
               WHERE tenant_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3)
               ORDER BY id DESC LIMIT $4""",
            tenant_id, endpoint_id, status, limit))

    async def attempts(self, tenant_id: str, endpoint_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(
            """SELECT a.delivery_id, d.event_id, a.attempt, a.status_code, a.error, a.latency_ms, a.attempted_at
               FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
               WHERE d.tenant_id = $1 AND a.endpoint_id = $2 ORDER BY a.id DESC LIMIT $3""",
            tenant_id, endpoint_id, limit))

    async def redrive(self, tenant_id: str, endpoint_id: uuid.UUID, ids: list[int] | None) -> int:
        """Dead letters become pending again, and their (endpoint, session) queues due now (the webhooks
        service's dispatcher reads only due queues; see db/migrations/0013_webhooks.sql)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),
                          dead_at = NULL
                   WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'dead'
                     AND ($3::bigint[] IS NULL OR id = ANY($3))
                   RETURNING session_id""",
                tenant_id, endpoint_id, ids)
            sessions = sorted({r["session_id"] for r in rows})
            await conn.execute(
                """INSERT INTO webhook_queues (endpoint_id, session_id) SELECT $1, s FROM unnest($2::text[]) AS s
                   ON CONFLICT (endpoint_id, session_id) DO UPDATE
                     SET next_attempt_at = LEAST(webhook_queues.next_attempt_at, now())""",
                endpoint_id, sessions)
        return len(rows)

    async def request_replay(self, tenant_id: str, endpoint_id: uuid.UUID, since: datetime) -> int | None:
        replay_id: int | None = await self.pool.fetchval(
            """INSERT INTO webhook_replays (endpoint_id, from_time)
               SELECT id, $3 FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 RETURNING id""",
            tenant_id, endpoint_id, since)
        return replay_id
