"""The projector loop: rows and offsets in one PostgreSQL transaction per batch.

Offsets live in ``projector_offsets``, not in Kafka: on assignment the consumer
seeks to what PostgreSQL says, so a crash between the two can never skip or
repeat an event.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from projector.handlers import HANDLERS
from projector.settings import Settings
from zapstream_platform.envelope import Envelope
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


SCHEMA_NAME = re.compile(r"^rm_v[0-9]{1,6}$")


def checked_schema(name: str) -> str:
    """Schema names end up in SQL text, so only the ``rm_vN`` shape is accepted."""
    if not SCHEMA_NAME.match(name):
        raise ValueError(f"not a read-model schema: {name!r}")
    return name


class Projector(ConsumerRebalanceListener):  # type: ignore[misc]
    """Applies the event topic to the read models of one projection.

    Without ``schema`` it writes to whatever schema ``projections`` names as
    active for its projection (read FOR SHARE in every batch, so a swap waits
    for it); a rebuild passes the new version's schema explicitly.
    """

    def __init__(self, settings: Settings, pool: asyncpg.Pool, schema: str | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.schema = checked_schema(schema) if schema else None
        self.topic = Topics.from_settings(settings.kafka).session_events
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        rows = await self.pool.fetch(
            "SELECT partition, next_offset FROM projector_offsets WHERE projection = $1 AND topic = $2",
            self.settings.projection, self.topic,
        )
        stored = {r["partition"]: r["next_offset"] for r in rows}
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            group_id=f"{self.settings.group_id}.{self.settings.projection}",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max,
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe([self.topic], listener=self)
        log.info("projector started", extra={"fields": {"projection": self.settings.projection}})
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.settings.batch_max)
                for tp, records in batches.items():
                    if records:
                        await self.apply_batch(tp, records)
        finally:
            await consumer.stop()

    async def apply_batch(self, tp: TopicPartition, records: list[Any]) -> None:
        """Apply records past the stored offset, and move the offset, in one transaction.

        The offset check makes a batch that was fetched before a rebalance, and
        is applied after the listener seeked back, a no-op instead of a repeat.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await self._use_schema(conn)
            stored = await conn.fetchval(
                """SELECT next_offset FROM projector_offsets
                   WHERE projection = $1 AND topic = $2 AND partition = $3 FOR UPDATE""",
                self.settings.projection, tp.topic, tp.partition,
            )
            fresh = [r for r in records if stored is None or r.offset >= stored]
            if not fresh:
                return
            for record in fresh:
                env = Envelope.from_record(record.value, record.headers)
                handler = HANDLERS.get(env.type)
                if handler is not None:
                    await handler(conn, env)
            await conn.execute(
                """INSERT INTO projector_offsets (projection, topic, partition, next_offset)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
                self.settings.projection, tp.topic, tp.partition, fresh[-1].offset + 1,
            )


    async def _use_schema(self, conn: asyncpg.Connection) -> None:
        schema = self.schema
        if schema is None:
            schema = await conn.fetchval(
                """SELECT active_schema FROM projections
                   WHERE name IN ($1, 'main') ORDER BY name = $1 DESC LIMIT 1 FOR SHARE""",
                self.settings.projection,
            )
        await conn.execute(f"SET LOCAL search_path TO {checked_schema(schema)}, public")


def install_signal_handlers(projector: Projector) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, projector.request_stop)
