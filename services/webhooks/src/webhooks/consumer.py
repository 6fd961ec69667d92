"""Event topic → delivery rows: each batch's deliveries and the partition's next offset in one transaction.

Offsets live in ``webhook_offsets`` (PostgreSQL), not in Kafka: on assignment the consumer seeks to
what PostgreSQL says, so a crash between enqueueing and committing can neither skip an event nor
enqueue it twice (and ``UNIQUE (endpoint_id, event_id)`` would absorb a repeat anyway).

Events whose QR or pairing code is off the event log (``zs_redacted``) are delivered as their whole copy
from the secrets topic, in their place (webhooks.secrets); that topic's offsets are stored beside the
event topic's, per partition, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from webhooks import store
from webhooks.secrets import KafkaSource, SecretCopies
from webhooks.settings import Settings
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.pii import PiiError
from zapstream_platform.errors import is_infrastructure
from zapstream_platform.metrics import Health, Metrics, record_consumer_lag
from zapstream_platform.pii import KeyRing
from zapstream_platform.webhooks import wants

log = logging.getLogger(__name__)


def deliveries_for(envs: list[Envelope], endpoints: list[store.Endpoint]) -> list[store.NewDelivery]:
    """Which endpoints want which events (tenant, then session and type filters)."""
    by_tenant: dict[str, list[store.Endpoint]] = {}
    for e in endpoints:
        by_tenant.setdefault(e.tenant_id, []).append(e)
    out: list[store.NewDelivery] = []
    for env in envs:
        for e in by_tenant.get(env.tenant_id, ()):
            if e.since is not None and occurred(env) < e.since:
                continue
            if wants(e.event_types, e.session_ids, env.type, env.session_id):
                out.append(store.NewDelivery(e.id, env.tenant_id, env.event_id, env.type, env.session_id,
                                             env.value(), env.traceparent))
    return out


def occurred(env: Envelope) -> datetime:
    try:
        return env.occurred_at()
    except ValueError:  # an unexpected timestamp format: treat the event as new rather than drop it
        return datetime.max.replace(tzinfo=UTC)


async def decode(record: Any, keys: KeyRing) -> Envelope | None:
    """The record with its personal fields decrypted: webhooks deliver the clear text, as before encryption.

    A database error reading the keys propagates (the batch is retried); only unreadable records are skipped.
    """
    try:
        env = Envelope.from_record(record.value, record.headers)
    except Exception:  # the projector dead-letters unreadable records; here they are only skipped
        _skipped(record)
        return None
    try:
        return await keys.open(env)
    except PiiError:
        _skipped(record)
        return None


def _skipped(record: Any) -> None:
    log.warning("unreadable event skipped", extra={"fields": {"partition": record.partition,
                                                              "offset": record.offset}})


class Enqueuer(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, settings: Settings, pool: asyncpg.Pool, topic: str, metrics: Metrics,
                 wake: Callable[[], None], keys: KeyRing, health: Health | None = None, *,
                 secrets_topic: str) -> None:
        self.settings = settings
        self.keys = keys
        self.health = health or Health(())
        self.pool = pool
        self.topic = topic
        self.metrics = metrics
        self.wake = wake
        self.consumer: AIOKafkaConsumer | None = None
        self.secrets_topic = secrets_topic
        self.secrets_source: KafkaSource | None = None
        self.secrets: SecretCopies | None = None
        self.assigned = asyncio.Event()
        self._stopping = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.assigned.clear()
        self.health.report("assigned", False)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        stored = await store.stored_offsets(self.pool, self.topic)
        fresh = [tp for tp in assigned if tp.partition not in stored]
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
        if fresh:
            await self._seek_fresh(fresh)
        await self._follow_in_secrets(assigned)
        self.assigned.set()
        self.health.report("assigned", bool(assigned))

    async def _seek_fresh(self, fresh: list[TopicPartition]) -> None:
        """Partitions this service never read: start at the first event any endpoint can want.

        Events older than every endpoint's registration are never sent (replay is for that), so there is
        no point reading years of history on a first deploy; with no endpoint yet, start at the end (a
        restart before anything was stored looks again, from the endpoints registered meanwhile).
        """
        assert self.consumer is not None
        # The ends first: an endpoint registered after the query below only wants events produced after
        # it, and those are past these offsets.
        ends = await self.consumer.end_offsets(fresh)
        since = await store.earliest_registration(self.pool)
        if since is None:
            for tp in fresh:
                self.consumer.seek(tp, ends[tp])
            return
        found = await self.consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in fresh})
        for tp in fresh:
            hit = found.get(tp)
            self.consumer.seek(tp, hit.offset if hit is not None else ends[tp])

    async def _follow_in_secrets(self, assigned: list[TopicPartition]) -> None:
        """Read the same-numbered secrets partitions, from their stored offsets (or what the topic still has:
        the copies before the first one needed are skipped by eventId)."""
        assert self.secrets_source is not None and self.secrets is not None
        stored = await store.stored_offsets(self.pool, self.secrets_topic)
        partitions = [tp.partition for tp in assigned]
        await self.secrets_source.assign({p: stored.get(p) for p in partitions})
        self.secrets.reset(partitions)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.settings.kafka.client_options(),
            group_id=self.settings.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max,
        )
        self.consumer = consumer
        # Group-less: it follows the event consumer's assignment (the runner writes a whole copy to the
        # partition number of its redacted event).
        secrets_consumer = AIOKafkaConsumer(**self.settings.kafka.client_options(), enable_auto_commit=False,
                                            isolation_level="read_committed", auto_offset_reset="earliest")
        self.secrets_source = KafkaSource(secrets_consumer, self.secrets_topic)
        self.secrets = SecretCopies(self.secrets_source, retention_ms=self.settings.kafka.secret_retention_ms,
                                    wait_s=self.settings.secret_wait_s)
        await secrets_consumer.start()
        await consumer.start()
        consumer.subscribe([self.topic], listener=self)
        rounds = 0
        try:
            while not self._stopping.is_set():
                try:
                    batches = await consumer.getmany(timeout_ms=200, max_records=self.settings.batch_max)
                except KafkaError:
                    self.health.report("kafka", False)
                    raise
                self.health.report("kafka", True)
                for tp, records in batches.items():
                    if records:
                        await self._apply(consumer, tp, records)
                rounds += 1
                if rounds % 25 == 0:
                    await record_consumer_lag(self.metrics, consumer, self.settings.group_id)
        finally:
            await consumer.stop()
            await secrets_consumer.stop()

    async def _apply(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Any]) -> None:
        envs = [env for env in [await decode(r, self.keys) for r in records] if env is not None]
        tenants = sorted({env.tenant_id for env in envs if env.tenant_id})
        assert self.secrets is not None
        try:
            async with self.pool.acquire() as conn:
                endpoints = await store.endpoints_of(conn, tenants) if tenants else []
                # Redacted events: their whole copies (QR, pairing code) instead, never both. Read from
                # Kafka before the transaction opens.
                joined = await self.secrets.join(tp.partition, records, deliveries_for(envs, endpoints))
                async with conn.transaction():
                    added = await store.enqueue(conn, joined.deliveries)
                    await store.save_offset(conn, tp.topic, tp.partition, records[-1].offset + 1)
                    if joined.next_offset is not None:
                        await store.save_offset(conn, self.secrets_topic, tp.partition, joined.next_offset)
        except Exception as exc:
            # Nothing here depends on the record's content (bad records are skipped), so every failure is
            # treated as the infrastructure's: wait, and read the same records again.
            log.warning("enqueue failed; retrying", extra={"fields": {"error": repr(exc)[:300],
                                                                      "infrastructure": is_infrastructure(exc)}})
            await asyncio.sleep(1.0)
            consumer.seek(tp, records[0].offset)
            return
        self.secrets.advance(tp.partition, joined.next_offset)
        if joined.missing:
            log.warning("events sent without their secrets (no longer, or not yet, on the secrets topic)",
                        extra={"fields": {"partition": tp.partition, "count": joined.missing}})
        self.metrics.events_consumed.labels(tp.topic, self.settings.group_id).inc(len(records))
        if added:
            self.metrics.webhook_enqueued.inc(added)
            self.wake()
