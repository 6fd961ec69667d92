"""Every SQL statement of the webhooks service (tables from db/migrations/0013_webhooks.sql)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from zapstream_contracts.identity_events import WebhookEndpointDisabled

REGISTRATION_SKEW = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: uuid.UUID
    tenant_id: str
    event_types: list[str]
    session_ids: list[str]
    # Events that occurred before this are not sent (None: no limit, as in a replay).
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    endpoint_id: uuid.UUID
    tenant_id: str
    event_id: str
    event_type: str
    session_id: str
    body: bytes
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with what is needed to send it."""

    id: int
    endpoint_id: uuid.UUID
    tenant_id: str
    event_id: str
    event_type: str
    session_id: str
    body: bytes
    attempts: int
    traceparent: str | None
    url: str
    secrets: list[str]


async def stored_offsets(pool: asyncpg.Pool, topic: str) -> dict[int, int]:
    rows = await pool.fetch("SELECT partition, next_offset FROM webhook_offsets WHERE topic = $1", topic)
    return {r["partition"]: r["next_offset"] for r in rows}


async def earliest_registration(pool: asyncpg.Pool) -> datetime | None:
    """When the oldest endpoint was registered (less the clock-skew margin), or None without endpoints."""
    first: datetime | None = await pool.fetchval("SELECT min(created_at) FROM webhook_endpoints")
    return None if first is None else first - REGISTRATION_SKEW


async def endpoints_of(conn: asyncpg.Connection, tenants: list[str]) -> list[Endpoint]:
    """Endpoints that receive new events: active ones, and paused ones (which keep them until resumed)."""
    rows = await conn.fetch(
        """SELECT id, tenant_id, event_types, session_ids, created_at FROM webhook_endpoints
           WHERE tenant_id = ANY($1::text[]) AND status IN ('active', 'paused')""", tenants)
    # From registration on: a consumer starting from offset 0 (a first deploy, a new group) must not send
    # an endpoint the tenant's whole history; that is what replay is for. The margin absorbs clock skew
    # between the runner that stamped occurredOn and PostgreSQL.
    return [Endpoint(r["id"], r["tenant_id"], list(r["event_types"]), list(r["session_ids"]),
                     r["created_at"] - REGISTRATION_SKEW) for r in rows]


_INSERT = """INSERT INTO webhook_deliveries (endpoint_id, tenant_id, event_id, event_type, session_id, body, traceparent)
              SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[])"""


def _columns(deliveries: list[NewDelivery]) -> list[list[Any]]:
    return [[d.endpoint_id for d in deliveries], [d.tenant_id for d in deliveries], [d.event_id for d in deliveries],
            [d.event_type for d in deliveries], [d.session_id for d in deliveries], [d.body for d in deliveries],
            [d.traceparent for d in deliveries]]


async def wake_queues(conn: asyncpg.Connection, keys: set[tuple[uuid.UUID, str]]) -> None:
    """Make these (endpoint, session) queues due now (creating them if new).

    Always safe: a dispatch round claims a queue's head only if the head itself is due, and then sets
    the queue's time from its head again. Keys are locked in sorted order (no deadlocks between writers).
    """
    if not keys:
        return
    ordered = sorted(keys, key=lambda k: (str(k[0]), k[1]))
    await conn.execute(
        """INSERT INTO webhook_queues (endpoint_id, session_id)
           SELECT * FROM unnest($1::uuid[], $2::text[])
           ON CONFLICT (endpoint_id, session_id) DO UPDATE
             SET next_attempt_at = LEAST(webhook_queues.next_attempt_at, now())""",
        [k[0] for k in ordered], [k[1] for k in ordered])


async def enqueue(conn: asyncpg.Connection, deliveries: list[NewDelivery]) -> int:
    """Insert deliveries once per (endpoint, event); a re-read batch after a crash adds nothing."""
    if not deliveries:
        return 0
    rows = await conn.fetch(_INSERT + " ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING endpoint_id, session_id",
                            *_columns(deliveries))
    await wake_queues(conn, {(r["endpoint_id"], r["session_id"]) for r in rows})
    return len(rows)


async def replay_enqueue(conn: asyncpg.Connection, deliveries: list[NewDelivery]) -> int:
    """Enqueue again: an already delivered or dead delivery of the same event becomes pending anew."""
    if not deliveries:
        return 0
    rows = await conn.fetch(
        _INSERT + """ ON CONFLICT (endpoint_id, event_id) DO UPDATE
                        SET status = 'pending', attempts = 0, next_attempt_at = now(), dead_at = NULL
                        WHERE webhook_deliveries.status <> 'pending'
                      RETURNING endpoint_id, session_id""",
        *_columns(deliveries))
    await wake_queues(conn, {(r["endpoint_id"], r["session_id"]) for r in rows})
    return len(rows)


async def save_offset(conn: asyncpg.Connection, topic: str, partition: int, next_offset: int) -> None:
    await conn.execute(
        """INSERT INTO webhook_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
           ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
        topic, partition, next_offset)


async def _resync(conn: asyncpg.Connection, keys: list[tuple[uuid.UUID, str]]) -> None:
    """Set each (locked) queue's time from its head: the head's next_attempt_at, or 'infinity' if empty.

    Runs as its own statement after the queue rows were locked, so it sees every delivery committed by
    an enqueue that touched these queues before; one still in progress waits for the lock and then makes
    the queue due itself (wake_queues).
    """
    await conn.execute(
        """UPDATE webhook_queues q SET next_attempt_at = coalesce(
               (SELECT d.next_attempt_at FROM webhook_deliveries d
                WHERE d.endpoint_id = q.endpoint_id AND d.session_id = q.session_id AND d.status = 'pending'
                ORDER BY d.id LIMIT 1), 'infinity')
           WHERE (q.endpoint_id, q.session_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))""",
        [k[0] for k in keys], [k[1] for k in keys])


async def claim_due(pool: asyncpg.Pool, *, limit: int, per_endpoint: int, inflight: dict[uuid.UUID, int],
                    lease_s: float) -> list[Claimed]:
    """Claim the head (oldest pending delivery) of due queues: at most ``per_endpoint`` in flight per
    endpoint, counting the ``inflight`` ones this process is already sending.

    Only heads are sent, so a session's events reach an endpoint in order and a failing delivery holds
    back only its own queue. Claiming moves the head's ``next_attempt_at`` a lease ahead: a sender that
    dies mid-request leaves it to be retried when the lease ends; the re-checked ``<= now()`` and the
    queue locks (SKIP LOCKED) keep two dispatchers from claiming the same delivery.
    """
    async with pool.acquire() as conn, conn.transaction():
        due = await conn.fetch(
            """WITH used AS (SELECT * FROM unnest($1::uuid[], $2::int[]) AS u(endpoint_id, n))
               SELECT endpoint_id, session_id FROM (
                   SELECT q.endpoint_id, q.session_id, q.next_attempt_at, coalesce(u.n, 0) AS used,
                          row_number() OVER (PARTITION BY q.endpoint_id ORDER BY q.next_attempt_at) AS rn
                   FROM webhook_queues q JOIN webhook_endpoints e ON e.id = q.endpoint_id
                        LEFT JOIN used u ON u.endpoint_id = q.endpoint_id
                   WHERE q.next_attempt_at <= now() AND e.status = 'active'
               ) c WHERE rn + used <= $3 ORDER BY next_attempt_at LIMIT $4""",
            list(inflight), list(inflight.values()), per_endpoint, limit)
        if not due:
            return []
        locked = await conn.fetch(
            """SELECT endpoint_id, session_id FROM webhook_queues
               WHERE (endpoint_id, session_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
                 AND next_attempt_at <= now()
               ORDER BY endpoint_id, session_id FOR UPDATE SKIP LOCKED""",
            [r["endpoint_id"] for r in due], [r["session_id"] for r in due])
        keys = [(r["endpoint_id"], r["session_id"]) for r in locked]
        if not keys:
            return []
        rows = await conn.fetch(
            """WITH k AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS k(endpoint_id, session_id)),
               heads AS (
                   SELECT h.id FROM k CROSS JOIN LATERAL (
                       SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                       WHERE d.endpoint_id = k.endpoint_id AND d.session_id = k.session_id AND d.status = 'pending'
                       ORDER BY d.id LIMIT 1) h
                   WHERE h.next_attempt_at <= now())
               UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $3)
               FROM heads, webhook_endpoints e
               WHERE d.id = heads.id AND e.id = d.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= now()
               RETURNING d.id, d.endpoint_id, d.tenant_id, d.event_id, d.event_type, d.session_id, d.body,
                         d.attempts, d.traceparent, e.url, e.secret, e.previous_secret, e.previous_expires_at""",
            [k[0] for k in keys], [k[1] for k in keys], lease_s)
        await _resync(conn, keys)
    now = datetime.now(UTC)
    out = []
    for r in rows:
        secrets = [r["secret"]]
        if r["previous_secret"] and r["previous_expires_at"] and r["previous_expires_at"] > now:
            secrets.append(r["previous_secret"])
        out.append(Claimed(r["id"], r["endpoint_id"], r["tenant_id"], r["event_id"], r["event_type"],
                           r["session_id"], bytes(r["body"]), r["attempts"], r["traceparent"], r["url"], secrets))
    return out


async def lock_queue(conn: asyncpg.Connection, d: Claimed) -> None:
    """First statement of an outcome's transaction: the queue's row, so its time can be reset after."""
    await conn.execute("SELECT 1 FROM webhook_queues WHERE endpoint_id = $1 AND session_id = $2 FOR UPDATE",
                       d.endpoint_id, d.session_id)


async def resync_queue(conn: asyncpg.Connection, d: Claimed) -> None:
    await _resync(conn, [(d.endpoint_id, d.session_id)])


async def record_attempt(conn: asyncpg.Connection, d: Claimed, status_code: int | None, error: str | None,
                         latency_ms: int) -> None:
    await conn.execute(
        """INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, status_code, error, latency_ms)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        d.id, d.endpoint_id, d.attempts + 1, status_code, error, latency_ms)


async def mark_delivered(conn: asyncpg.Connection, d: Claimed, status_code: int) -> bool:
    done = await conn.fetchval(
        """UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
                  last_status_code = $2, last_error = NULL, last_attempt_at = now()
           WHERE id = $1 AND status = 'pending' RETURNING true""", d.id, status_code)
    if done:
        await conn.execute("UPDATE webhook_endpoints SET consecutive_dead = 0 WHERE id = $1 AND consecutive_dead <> 0",
                           d.endpoint_id)
    return bool(done)


async def mark_retry(conn: asyncpg.Connection, d: Claimed, status_code: int | None, error: str | None,
                     delay_s: float) -> None:
    await conn.execute(
        """UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $4),
                  last_status_code = $2, last_error = $3, last_attempt_at = now()
           WHERE id = $1 AND status = 'pending'""", d.id, status_code, error, delay_s)


async def mark_dead(conn: asyncpg.Connection, d: Claimed, status_code: int | None, error: str | None,
                    disable_after: int) -> bool:
    """Dead-letter the delivery; disable the endpoint after ``disable_after`` dead letters in a row.

    Returns True if this disabled the endpoint (a ``webhook.endpoint.disabled`` event is written to the
    outbox in the same transaction; the command API's relay publishes it).
    """
    dead = await conn.fetchval(
        """UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1, dead_at = now(),
                  last_status_code = $2, last_error = $3, last_attempt_at = now()
           WHERE id = $1 AND status = 'pending' RETURNING true""", d.id, status_code, error)
    if not dead:
        return False
    row = await conn.fetchrow(
        """UPDATE webhook_endpoints SET consecutive_dead = consecutive_dead + 1,
                  status = CASE WHEN consecutive_dead + 1 >= $2 AND status = 'active' THEN 'disabled' ELSE status END,
                  disabled_reason = CASE WHEN consecutive_dead + 1 >= $2 AND status = 'active'
                                         THEN $3 ELSE disabled_reason END,
                  updated_at = now()
           WHERE id = $1 RETURNING status, consecutive_dead""",
        d.endpoint_id, disable_after, f"{disable_after} deliveries in a row failed every attempt")
    disabled = row is not None and row["status"] == "disabled" and row["consecutive_dead"] == disable_after
    if disabled:
        notice = WebhookEndpointDisabled(endpoint_id=str(d.endpoint_id), reason="consecutive_failures",
                                         consecutive_dead_letters=disable_after)
        await conn.execute(
            "INSERT INTO outbox (event_id, event_type, tenant_id, payload) VALUES ($1, $2, $3, $4)",
            uuid.uuid4(), notice.TYPE, d.tenant_id, orjson.dumps(notice.model_dump(by_alias=True, mode="json")).decode())
    return disabled


async def pending_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))


async def replays_todo(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT r.id, r.endpoint_id, r.from_time, e.tenant_id, e.event_types, e.session_ids
           FROM webhook_replays r JOIN webhook_endpoints e ON e.id = r.endpoint_id
           WHERE r.done_at IS NULL ORDER BY r.id LIMIT 10""")
    return [dict(r) for r in rows]


async def replay_done(conn: asyncpg.Connection, replay_id: int, enqueued: int) -> None:
    await conn.execute("UPDATE webhook_replays SET done_at = now(), enqueued = $2 WHERE id = $1", replay_id, enqueued)
