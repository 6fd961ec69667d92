"""The campaign read model: campaign events → ``campaigns``, ``campaign_recipients``, ``suppressions``.

Exactly-once like the main projector: each batch's rows and its
``(projection, topic, partition, next_offset)`` are written in one PostgreSQL
transaction; on assignment the consumer seeks to the stored offsets, and
records below them are skipped. ``python -m campaign_runner replay`` rebuilds
the tables from offset 0 (run it with the projection stopped). Recipients'
phones and names, the message text and suppressed numbers are encrypted on the
topic with the tenant's key: they are decrypted here (``KeyRing``) so the
tables (and the API) hold them in clear, until the tenant is erased.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from pydantic import BaseModel

from zapstream_contracts import campaign_payloads as cp
from zapstream_contracts import events as ev
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.timefmt import parse_iso
from zapstream_domain.campaign import SUPPRESSION_ADDED
from zapstream_platform.db import seek_to_stored_offsets
from zapstream_platform.pii import ERASED, KeyRing
from zapstream_platform.topics import partitions_of

log = logging.getLogger(__name__)

PROJECTION = "campaigns"
TERMINAL = ("completed", "cancelled", "failed")


def _ts(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None


def _json(model: BaseModel) -> str:
    return orjson.dumps(model.model_dump(by_alias=True, mode="json")).decode()


async def apply(conn: asyncpg.Connection, env: CampaignEnvelope) -> None:
    t = env.type
    at = env.occurred_at()
    if t == SUPPRESSION_ADDED:
        s = env.data(cp.SuppressionAdded)
        if s.phone is None:  # the tenant's key was erased: no number left to suppress
            return
        await conn.execute(
            """INSERT INTO suppressions (tenant_id, phone, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant_id, phone) DO NOTHING""",
            s.tenant_id, s.phone, s.reason, s.source, _ts(s.at))
        return
    if not env.campaign_id:
        return
    cid = env.campaign_id
    if t == ev.CAMPAIGN_CREATED.type:
        c = env.data(cp.CampaignCreated)
        await conn.execute(
            """INSERT INTO campaigns (id, tenant_id, name, status, message, session_ids, pacing, timezone, total,
                                      pending, created_at, updated_at)
               VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $8, $9, $9) ON CONFLICT (id) DO NOTHING""",
            cid, c.tenant_id, c.name, _json(c.message), [s.session_id for s in c.sessions], _json(c.pacing),
            c.timezone, c.expected_recipients, at)
    elif t == ev.CAMPAIGN_RECIPIENTS_ADDED.type:
        added = env.data(cp.RecipientsAdded)
        await conn.executemany(
            """INSERT INTO campaign_recipients (campaign_id, recipient_id, seq, tenant_id, phone, nombre, sustantivo,
                                               grupo, contact_id, status, reason, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING""",
            # An erased phone (the tenant's key is gone) is kept as ``[erased]`` and the recipient skipped, as
            # the aggregate does (``Campaign.RecipientsAdded``).
            [(cid, r.id, r.seq, added.tenant_id, r.phone if r.phone is not None else ERASED, r.nombre,
              r.sustantivo, r.grupo, r.contact_id,
              "skipped" if r.skip_reason or r.phone is None else "pending",
              r.skip_reason or (None if r.phone is not None else "erased"), at) for r in added.recipients])
    elif t == ev.CAMPAIGN_STATUS.type:
        st = env.data(cp.StatusChanged)
        await conn.execute(
            """UPDATE campaigns SET status = $2, status_reason = $3,
                   scheduled_at = coalesce($4, scheduled_at),
                   started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, $5) ELSE started_at END,
                   finished_at = CASE WHEN $2 = ANY($6::text[]) THEN $5 ELSE NULL END,
                   updated_at = $5
               WHERE id = $1""",
            cid, st.status, st.reason, _ts(st.scheduled_at), at, list(TERMINAL))
        if st.status == "cancelled":
            await conn.execute(
                """UPDATE campaign_recipients SET status = 'cancelled', updated_at = $2
                   WHERE campaign_id = $1 AND status IN ('pending', 'retrying')""", cid, at)
    elif t == ev.CAMPAIGN_TYPING.type:
        await conn.executemany(
            """UPDATE campaign_recipients SET status = 'typing', session_id = $3, updated_at = $4
               WHERE campaign_id = $1 AND recipient_id = $2""",
            [(cid, i.recipient_id, i.session_id, at) for i in env.data(cp.RecipientsTyping).items])
    elif t == ev.CAMPAIGN_DISPATCHED.type:
        await conn.executemany(
            """UPDATE campaign_recipients SET status = 'sending', session_id = $3, attempts = $4, updated_at = $5
               WHERE campaign_id = $1 AND recipient_id = $2""",
            [(cid, i.recipient_id, i.session_id, i.attempt, at) for i in env.data(cp.RecipientsDispatched).items])
    elif t == ev.CAMPAIGN_UPDATED.type:
        rows = [(cid, u.recipient_id, u.status, u.code, u.reason, u.message_id, _ts(u.at))
                for u in env.data(cp.RecipientsUpdated).updates if u.part is None]
        await conn.executemany(
            """UPDATE campaign_recipients SET status = $3, code = $4, reason = $5,
                   message_id = coalesce($6, message_id),
                   sent_at = CASE WHEN $3 = 'sent' OR ($6::text IS NOT NULL AND sent_at IS NULL) THEN $7
                                  ELSE sent_at END,
                   delivered_at = CASE WHEN $3 = 'delivered' THEN $7 ELSE delivered_at END,
                   read_at = CASE WHEN $3 = 'read' THEN $7 ELSE read_at END,
                   updated_at = $7
               WHERE campaign_id = $1 AND recipient_id = $2""", rows)
    elif t == ev.CAMPAIGN_RETRY_REQUESTED.type:
        await conn.execute(
            """UPDATE campaign_recipients SET status = 'retrying', code = NULL, reason = NULL, updated_at = $3
               WHERE campaign_id = $1 AND recipient_id = ANY($2::text[])""",
            cid, env.data(cp.RetryRequested).recipient_ids, at)
    elif t == ev.CAMPAIGN_PROGRESS.type:
        n = env.data(cp.Progressed).counts
        await conn.execute(
            """UPDATE campaigns SET total = $2, pending = $3, sending = $4, sent = $5, delivered = $6, read = $7,
                   failed = $8, skipped = $9, cancelled = $10, updated_at = $11 WHERE id = $1""",
            cid, n.total, n.pending, n.sending, n.sent, n.delivered, n.read, n.failed, n.skipped, n.cancelled, at)


async def project_batch(pool: asyncpg.Pool, topic: str, partition: int, records: list[Any],
                        keys: KeyRing | None = None) -> int:
    """Apply one partition's batch with its offset in one transaction; returns the next offset.

    Personal fields are decrypted with ``keys`` (the tenant's key) first, outside the transaction, so the
    key lookups never wait for a connection this batch holds; without ``keys`` they stay as stored.
    """
    envs = [CampaignEnvelope.from_record(r.value, r.headers) for r in records]
    if keys is not None:
        envs = [await keys.open(env) for env in envs]
    async with pool.acquire() as conn, conn.transaction():
        stored = await conn.fetchval(
            """SELECT next_offset FROM projector_offsets WHERE projection = $1 AND topic = $2 AND partition = $3
               FOR UPDATE""", PROJECTION, topic, partition)
        fresh = [(r, env) for r, env in zip(records, envs, strict=True) if stored is None or r.offset >= stored]
        if not fresh:
            return int(stored)
        for _, env in fresh:
            await apply(conn, env)
        nxt = int(fresh[-1][0].offset) + 1
        await conn.execute(
            """INSERT INTO projector_offsets (projection, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
               ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = excluded.next_offset""",
            PROJECTION, topic, partition, nxt)
        return nxt


class CampaignProjection(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pool: asyncpg.Pool, bootstrap_servers: str, topic: str, group_id: str,
                 batch_max: int = 1000, keys: KeyRing | None = None) -> None:
        self.pool = pool
        self.keys = keys
        self.bootstrap = bootstrap_servers
        self.topic = topic
        self.group_id = group_id
        self.batch_max = batch_max
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        await seek_to_stored_offsets(self.consumer, self.pool, PROJECTION, self.topic, assigned)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest", max_poll_records=self.batch_max,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=self)
        try:
            while not self._stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=self.batch_max)
                for tp, records in batches.items():
                    if not records:
                        continue
                    try:
                        await project_batch(self.pool, tp.topic, tp.partition, records, self.keys)
                    except Exception:
                        log.exception("campaign projection batch failed; retrying",
                                      extra={"fields": {"partition": tp.partition}})
                        await asyncio.sleep(1.0)
                        self.consumer.seek(tp, records[0].offset)
        finally:
            await self.consumer.stop()


async def replay(pool: asyncpg.Pool, bootstrap_servers: str, topic: str) -> int:
    """Rebuild the campaign read model from offset 0 (with the live projection stopped).

    Its own key ring (no cache carried over), so a tenant erased before the replay reads as erased."""
    keys = KeyRing(pool)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("TRUNCATE campaigns, campaign_recipients")
        await conn.execute("DELETE FROM projector_offsets WHERE projection = $1", PROJECTION)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    count = 0
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap_servers, topic)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=2000)).get(tp, [])
                if batch:
                    await project_batch(pool, topic, tp.partition, batch, keys)
                    count += len(batch)
    finally:
        await consumer.stop()
    return count
