"""The projector loop: rows and offsets in one PostgreSQL transaction per batch.

Offsets live in ``projector_offsets``, not in Kafka: on assignment the consumer
seeks to what PostgreSQL says, so a crash between the two can never skip or
repeat an event.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from opentelemetry.trace import Link, Span, SpanKind

from projector.handlers import checked_schema, project
from projector.settings import Settings
from zapstream_contracts.envelope import Envelope
from zapstream_platform import telemetry
from zapstream_platform.db import seek_to_stored_offsets
from zapstream_platform.errors import is_infrastructure
from zapstream_platform.metrics import Metrics, record_consumer_lag
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


__all__ = ["Projector", "checked_schema", "install_signal_handlers"]


class Projector(ConsumerRebalanceListener):  # type: ignore[misc]
    """Applies the event topic to the read models of one projection.

    Without ``schema`` it writes to whatever schema ``projections`` names as
    active for its projection (read FOR SHARE in every batch, so a swap waits
    for it); a rebuild passes the new version's schema explicitly.
    """

    def __init__(self, settings: Settings, pool: asyncpg.Pool, schema: str | None = None,
                 metrics: Metrics | None = None, parks_as: str | None = None,
                 keys: KeyRing | None = None) -> None:
        self.settings = settings
        # The projection a parked record is listed under. A rebuild (projection "main@rm_v7") files them under the
        # projection it rebuilds, so the operator sees one list and the live projector re-drives them into the
        # active schema; usually the live projector parked the same record already (the insert then does nothing).
        self.parks_as = parks_as or settings.projection
        self.metrics = metrics or Metrics("projector")
        # Personal fields are decrypted as records are decoded; an erased tenant's read as null (a replay's
        # own key ring sees an erasure at once, the live one within its cache time).
        self.keys = keys or KeyRing(pool)
        self.tracer = telemetry.tracer("projector")
        self.group_id = f"{settings.group_id}.{settings.projection}"
        self.pool = pool
        self.schema = checked_schema(schema) if schema else None
        self.topic = Topics.from_settings(settings.kafka).session_events
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        await seek_to_stored_offsets(self.consumer, self.pool, self.settings.projection, self.topic, assigned)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max,
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe([self.topic], listener=self)
        log.info("projector started", extra={"fields": {"projection": self.settings.projection}})
        failures: dict[TopicPartition, tuple[int, int]] = {}
        last_redrive = last_sample = 0.0
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.settings.batch_max)
                for tp, records in batches.items():
                    if records:
                        await self._apply_or_dead_letter(consumer, tp, records, failures)
                        self.metrics.events_consumed.labels(tp.topic, self.group_id).inc(len(records))
                if time.monotonic() - last_sample > self.settings.metrics_interval_s:
                    last_sample = time.monotonic()
                    try:
                        await record_consumer_lag(self.metrics, consumer, self.group_id)
                    except Exception:  # between rebalances the assignment can vanish under us
                        log.debug("lag sample skipped", exc_info=True)
                if time.monotonic() - last_redrive > 1.0:
                    last_redrive = time.monotonic()
                    try:
                        await self.redrive_requested()
                    except Exception:  # an outage here must not end the projector; next round retries
                        log.exception("re-drive poll failed")
        finally:
            await consumer.stop()

    async def _apply_or_dead_letter(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[Any],
        failures: dict[TopicPartition, tuple[int, int]],
    ) -> None:
        """Bounded retries with backoff; then one record at a time; then the dead-letter table."""
        failing = failures.get(tp)
        if failing is not None and failing[0] == records[0].offset and len(records) > 1:
            consumer.seek(tp, records[1].offset)
            records = records[:1]
        try:
            await self.apply_batch(tp, records)
            failures.pop(tp, None)
        except Exception as exc:
            if is_infrastructure(exc):
                # PostgreSQL or Kafka is away: wait for it, without counting this against the records.
                log.warning("infrastructure unavailable; retrying", extra={"fields": {"error": repr(exc)[:300]}})
                await asyncio.sleep(1.0)
                consumer.seek(tp, records[0].offset)
                return
            attempts = failing[1] + 1 if failing and failing[0] == records[0].offset else 1
            failures[tp] = (records[0].offset, attempts)
            log.exception("projection failed", extra={"fields": {"partition": tp.partition,
                                                                 "offset": records[0].offset, "attempt": attempts}})
            if attempts >= self.settings.max_attempts and len(records) == 1:
                try:
                    await self.dead_letter(tp, records[0], f"{type(exc).__name__}: {exc}")
                except Exception:
                    log.exception("dead-lettering failed; will retry")
                    await asyncio.sleep(1.0)
                    consumer.seek(tp, records[0].offset)
                    return
                failures.pop(tp, None)
                consumer.seek(tp, records[0].offset + 1)
                return
            await asyncio.sleep(min(self.settings.retry_backoff_s * 2 ** (attempts - 1), 10.0))
            consumer.seek(tp, records[0].offset)

    async def dead_letter(self, tp: TopicPartition, record: Any, reason: str) -> None:
        """Park the record and move the offset past it, atomically."""
        etype: str | None
        sid: str | None
        tenant: str | None
        try:
            env = Envelope.from_record(record.value, record.headers)
            etype, sid, tenant = env.type, env.session_id, env.tenant_id
        except Exception:  # unreadable is exactly why some records end up here
            etype = sid = tenant = None
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                """SELECT next_offset FROM projector_offsets
                   WHERE projection = $1 AND topic = $2 AND partition = $3 FOR UPDATE""",
                self.settings.projection, tp.topic, tp.partition,
            )
            if stored is not None and record.offset < stored:
                return
            await conn.execute(
                """INSERT INTO projector_dead_letters
                     (projection, topic, partition, "offset", event_type, session_id, tenant_id, value, headers, reason)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING""",
                self.parks_as, tp.topic, tp.partition, record.offset, etype, sid, tenant, record.value,
                orjson.dumps(headers).decode(), reason[:2000],
            )
            await conn.execute(
                """INSERT INTO projector_offsets (projection, topic, partition, next_offset)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
                self.settings.projection, tp.topic, tp.partition, record.offset + 1,
            )
        log.error("event dead-lettered", extra={"fields": {"partition": tp.partition, "offset": record.offset,
                                                           "reason": reason[:300]}})

    async def _attempt(self, tp: TopicPartition, records: list[Any]) -> Exception | None:
        """None once ``records`` are applied; the error when their content failed (an outage is raised)."""
        try:
            await self.apply_batch(tp, records)
            return None
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            return exc

    async def apply_or_park(self, tp: TopicPartition, records: list[Any]) -> int:
        """Apply ``records`` in order, parking the ones that cannot be projected; returns how many were parked.

        The live loop's rules for a caller with no consumer to seek back (a rebuild): a batch that fails is split
        in halves, in order, until the record that fails alone is found; that one is retried ``max_attempts``
        times with the same backoff, then parked with ``dead_letter`` (its offset moves past it in the same
        transaction). Halving finds a poison record in a rebuild's 5,000-event batch in about a dozen
        transactions instead of one per record. An outage is raised, never parked, as in the live loop.
        """
        error = await self._attempt(tp, records)
        if error is None:
            return 0
        if len(records) > 1:
            half = len(records) // 2
            return await self.apply_or_park(tp, records[:half]) + await self.apply_or_park(tp, records[half:])
        for attempt in range(1, self.settings.max_attempts):
            log.warning("projection failed", extra={"fields": {"partition": tp.partition,
                                                               "offset": records[0].offset, "attempt": attempt,
                                                               "error": repr(error)[:300]}})
            await asyncio.sleep(min(self.settings.retry_backoff_s * 2 ** (attempt - 1), 10.0))
            retried = await self._attempt(tp, records)
            if retried is None:
                return 0
            error = retried
        await self.dead_letter(tp, records[0], f"{type(error).__name__}: {error}")
        return 1

    async def redrive_requested(self) -> int:
        """Apply dead letters an operator asked to re-drive (after fixing the cause)."""
        rows = await self.pool.fetch(
            """SELECT id, value, headers FROM projector_dead_letters
               WHERE projection = $1 AND redrive_requested_at IS NOT NULL AND redriven_at IS NULL
               ORDER BY topic, partition, "offset" LIMIT 100""",
            self.settings.projection,
        )
        done = 0
        for row in rows:
            headers = [(k, str(v).encode()) for k, v in orjson.loads(row["headers"]).items()]
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    schema = await self._use_schema(conn)
                    env = await self.keys.open(Envelope.from_record(bytes(row["value"]), headers))
                    await project(conn, schema, [env])
                    await conn.execute("UPDATE projector_dead_letters SET redriven_at = now() WHERE id = $1",
                                       row["id"])
                done += 1
            except Exception as exc:
                await self.pool.execute(
                    """UPDATE projector_dead_letters SET redrive_requested_at = NULL, reason = $2 WHERE id = $1""",
                    row["id"], f"redrive failed: {type(exc).__name__}: {exc}"[:2000],
                )
        return done

    async def apply_batch(self, tp: TopicPartition, records: list[Any]) -> None:
        """Apply records past the stored offset, and move the offset, in one transaction.

        The offset check makes a batch that was fetched before a rebalance, and
        is applied after the listener seeked back, a no-op instead of a repeat.
        """
        started = time.time_ns()
        with self.tracer.start_as_current_span("project batch", kind=SpanKind.CONSUMER, attributes={
                "messaging.system": "kafka", "messaging.destination.name": tp.topic,
                "messaging.destination.partition.id": str(tp.partition)}) as batch:
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    schema = await self._use_schema(conn)
                    stored = await conn.fetchval(
                        """SELECT next_offset FROM projector_offsets
                           WHERE projection = $1 AND topic = $2 AND partition = $3 FOR UPDATE""",
                        self.settings.projection, tp.topic, tp.partition,
                    )
                    fresh = [r for r in records if stored is None or r.offset >= stored]
                    if not fresh:
                        return
                    envelopes = [await self.keys.open(Envelope.from_record(r.value, r.headers)) for r in fresh]
                    # The whole batch in set-based statements (see handlers.py), in the offsets' transaction.
                    await project(conn, schema, envelopes)
                    await conn.execute(
                        """INSERT INTO projector_offsets (projection, topic, partition, next_offset)
                           VALUES ($1, $2, $3, $4)
                           ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
                        self.settings.projection, tp.topic, tp.partition, fresh[-1].offset + 1,
                    )
                    committing = time.perf_counter()
                # Leaving the block committed the rows and the offset.
                self.metrics.projector_commit.labels(self.settings.projection).observe(
                    time.perf_counter() - committing)
            self._observe(envelopes, batch, started)

    def _observe(self, envelopes: list[Envelope], batch: Span, started_ns: int) -> None:
        """Batch size, event age (live projection only: a rebuild's events are old by design), and, when
        tracing, a span per event in the event's own trace, covering the batch's transaction and linked
        to the batch span (the rows are written set-based, so the batch's time is each event's)."""
        projection = self.settings.projection
        self.metrics.projector_batch.labels(projection).observe(len(envelopes))
        if self.schema is None:
            now = time.time()
            age = self.metrics.projector_lag.labels(projection)
            for env in envelopes:
                occurred = _epoch(env.occurred_on)
                if occurred is not None:
                    age.observe(max(0.0, now - occurred))
        if not batch.is_recording():
            return
        links = [Link(batch.get_span_context())]
        ended = time.time_ns()
        for env in envelopes:
            span = self.tracer.start_span(f"project {env.type}", context=telemetry.context_from_traceparent(
                env.traceparent), kind=SpanKind.CONSUMER, links=links, start_time=started_ns)
            span.end(end_time=ended)

    async def _use_schema(self, conn: asyncpg.Connection) -> str:
        schema = self.schema
        if schema is None:
            schema = await conn.fetchval(
                """SELECT active_schema FROM projections
                   WHERE name IN ($1, 'main') ORDER BY name = $1 DESC LIMIT 1 FOR SHARE""",
                self.settings.projection,
            )
        if self.schema is not None:
            # A rebuild's batches need not wait for their WAL flush: rows and offsets are lost together or not
            # at all, and a rebuild cut short by a crash is started again anyway. The swap commits normally.
            await conn.execute(f"SET LOCAL search_path TO {checked_schema(schema)}, public; "
                               "SET LOCAL synchronous_commit = off")
            return schema
        await conn.execute(f"SET LOCAL search_path TO {checked_schema(schema)}, public")
        return schema


def _epoch(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def install_signal_handlers(projector: Projector) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, projector.request_stop)
