"""Transactional outbox: identity changes and their events commit together; a relay publishes the events.

``record`` is called inside the transaction that makes the change. The relay
reads unsent rows (``FOR UPDATE SKIP LOCKED``, so several API instances share
the work), produces them with the idempotent producer (``acks=all``), and marks
them sent in the same database transaction. A crash between the broker's ack
and the commit re-publishes those rows: delivery is at least once, and
consumers de-duplicate on ``eventId`` (also the ``ce_id`` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from zapstream_contracts.envelope import identity_headers
from zapstream_contracts.identity_events import (
    IDENTITY_EVENTS_BY_TYPE,
    IDENTITY_SOURCE,
    PII_FIELDS,
    identity_dataschema,
)
from zapstream_platform import pii as pii_keys
from zapstream_platform.metrics import Metrics
from zapstream_platform.settings import KafkaSettings

log = logging.getLogger(__name__)
SOURCE = IDENTITY_SOURCE


def identity_topic(kafka: KafkaSettings) -> str:
    return f"{kafka.topic_prefix}.identity.events"


async def record(conn: asyncpg.Connection, event_type: str, tenant_id: str, payload: dict[str, Any],
                 pii: tuple[str, ...] | None = None, subject: str | None = None) -> None:
    """Add an event to the outbox; the caller's transaction decides whether it ever existed.

    Personal data (``pii``: by default the type's ``PII_FIELDS``) is encrypted with the data key of
    ``subject`` (by default the payload's ``userId``) before it is stored, so the outbox row and every copy
    on the kept-forever topic become unreadable once that user is erased.
    """
    fields = PII_FIELDS.get(event_type, ()) if pii is None else pii
    # Read through the type's contract model: a payload that is not its type's fails here, in the request
    # that wrote it, rather than in every consumer of the topic.
    event = IDENTITY_EVENTS_BY_TYPE[event_type].model_validate(payload)
    owner = subject or getattr(event, "user_id", None)  # the user the event is about, for the types that have one
    if fields and owner:
        key = await pii_keys.data_key(conn, str(owner), tenant_id)
        if key is None:  # already erased: nothing personal is written again
            # PII field names are single words (email, name): the same as the model's attributes.
            payload = {**payload, **{f: pii_keys.ERASED for f in fields if getattr(event, f, None) is not None}}
        else:
            payload = pii_keys.encrypt_fields(payload, fields, key, str(owner))
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, tenant_id, payload) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(), event_type, tenant_id, orjson.dumps(payload).decode(),
    )


async def ensure_topic(kafka: KafkaSettings) -> None:
    """Create the identity topic if missing (same partitions as the session topics; kept forever)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        name = identity_topic(kafka)
        if name in set(await admin.list_topics()):
            return
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(
                name=name, num_partitions=kafka.partitions, replication_factor=1,
                topic_configs={"retention.ms": str(kafka.event_retention_ms), "min.insync.replicas": "1"},
            )])
    finally:
        await admin.close()


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def relay_once(pool: asyncpg.Pool, producer: AIOKafkaProducer, topic: str, batch: int = 200) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT id, event_id, event_type, tenant_id, created_at, payload AS stored FROM outbox
               WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""", batch
        )
        if not rows:
            return 0
        pending = []
        for r in rows:
            event_id, occurred = str(r["event_id"]), _iso(r["created_at"])
            value = {"type": r["event_type"], "eventId": event_id, "occurredOn": occurred,
                     "tenantId": r["tenant_id"], "payload": orjson.loads(r["stored"])}
            headers = identity_headers(r["event_type"], event_id, occurred, r["tenant_id"],
                                       identity_dataschema(r["event_type"]), SOURCE)
            # Keyed by tenant: a tenant's identity events keep their order.
            pending.append(await producer.send(topic, value=orjson.dumps(value), key=r["tenant_id"].encode(),
                                               headers=headers))
        await asyncio.gather(*pending)
        await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        return len(rows)


async def run_relay(pool: asyncpg.Pool, producer: AIOKafkaProducer, kafka: KafkaSettings,
                    stopping: asyncio.Event, interval_s: float, metrics: Metrics | None = None) -> None:
    topic = identity_topic(kafka)
    while not stopping.is_set():
        try:
            await ensure_topic(kafka)
            break
        except Exception:
            log.exception("cannot create topic %s yet", topic)
            await _sleep(stopping, 2)
    while not stopping.is_set():
        try:
            sent = await relay_once(pool, producer, topic)
            if sent and metrics is not None:
                metrics.events_produced.labels(topic).inc(sent)
        except Exception:
            log.exception("outbox relay failed; retrying")
            sent = 0
            await _sleep(stopping, 1)
        if not sent:
            await _sleep(stopping, interval_s)


async def _sleep(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
