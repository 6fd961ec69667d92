"""The secrets topic → the read model: the QR a session shows, and pairing codes in command outcomes.

The event log carries neither code (see :mod:`zapstream_contracts.secrets`), so the projection of the
event topic leaves ``rm_sessions.qr`` empty and a pairing success without ``result.code``; this task
fills them from the short-retention secrets topic. It is not part of replays: after a rebuild the QR is
empty until the next one (QRs rotate every 20 to 60 s) and old pairing codes are gone, as they should be.

A QR goes into the row only while the ``session.qr.updated`` it completes is the session's latest
projected state change (``rm_sessions.version`` equals its ``ce_sequence``). The two topics are read by
different consumers, so a QR that arrives before its event waits here (until it expires) and one whose
session has moved on (connected, a newer QR) is dropped. A pairing success is written whole, so it does
not matter which of the two copies is projected first.

Each statement touches one row and commits by itself (no transaction spans several rows), so it never
deadlocks with the projector's batches. There is no offset bookkeeping: on start it reads the last
``lookback_s`` seconds of the topic (older codes have expired), and applying a record twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from projector.handlers import PURGED, checked_schema
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, partitions_of

log = logging.getLogger(__name__)

MAX_WAITING = 10_000  # QRs waiting for their event; beyond that the oldest are dropped (they expire anyway)


class SecretsApplier:
    def __init__(self, kafka: KafkaSettings, pool: asyncpg.Pool, projection: str = "main",
                 lookback_s: float = 120.0) -> None:
        self.kafka = kafka
        self.pool = pool
        self.projection = projection
        self.lookback_s = lookback_s
        self.topic = Topics.from_settings(kafka).session_secrets
        # QRs whose event is not projected yet: (sessionId, sequence) → (QR, when to give up, epoch s)
        self.waiting: dict[tuple[str, int], tuple[p.QrSecret, float]] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the secrets topic until ``stopping``; a failure (Kafka away) starts over a second later."""
        while not stopping.is_set():
            try:
                await self._follow(stopping)
            except Exception:
                log.exception("secrets consumer failed; starting over")
                await asyncio.sleep(1.0)

    async def _follow(self, stopping: asyncio.Event) -> None:
        partitions = await partitions_of(self.kafka, self.topic)
        while not partitions and not stopping.is_set():
            log.warning("waiting for topic %s", self.topic)
            await asyncio.sleep(1)
            partitions = await partitions_of(self.kafka, self.topic)
        consumer = AIOKafkaConsumer(**self.kafka.client_options(), isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="latest")
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, n) for n in partitions]
            consumer.assign(tps)
            await self._position(consumer, tps)
            while not stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                records = [r for tp in sorted(batches, key=lambda t: t.partition) for r in batches[tp]]
                try:
                    await self.apply([secrets.from_record(r.value, r.headers) for r in records])
                except Exception:
                    # Best effort, never fatal for the projector: these codes are lost (PostgreSQL away, a
                    # record that does not parse); the next QR comes within a minute.
                    log.exception("could not project secrets")
                    await asyncio.sleep(1.0)
        finally:
            await consumer.stop()

    async def _position(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        """From ``lookback_s`` ago (older codes have expired), else the end."""
        since = int((time.time() - self.lookback_s) * 1000)
        found = await consumer.offsets_for_times({tp: since for tp in tps})
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            at = found.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])

    async def apply(self, envs: list[Envelope]) -> None:
        """Put the records' codes into the read model; QRs whose event is not projected yet wait."""
        for env in envs:
            qr = secrets.qr_of(env)
            if qr is not None:
                self.waiting[(env.session_id, env.version)] = (qr, _expiry(qr.expires_at))
        while len(self.waiting) > MAX_WAITING:
            self.waiting.pop(next(iter(self.waiting)))
        pairs = [(env, outcome) for env in envs if (outcome := secrets.pair_code_of(env)) is not None]
        if not self.waiting and not pairs:
            return
        async with self.pool.acquire() as conn:
            active = await conn.fetchval(
                "SELECT active_schema FROM projections WHERE name IN ($1, 'main') ORDER BY name = $1 DESC LIMIT 1",
                self.projection)
            if active is None:
                return
            schema = checked_schema(active)
            for env, outcome in pairs:
                # Not for a purged session: its outcomes stay without a result (see handlers.PURGED).
                await conn.execute(
                    f"""INSERT INTO {schema}.rm_commands
                          (command_id, tenant_id, session_id, command_type, status, result, finished_at)
                        SELECT $1, $2, $3, $4, 'succeeded', $5::jsonb, $6
                        WHERE NOT EXISTS (SELECT 1 FROM {schema}.rm_sessions s WHERE s.id = $3
                                          AND s.status = 'deleted' AND s.disconnected_reason = $7)
                        ON CONFLICT (command_id) DO UPDATE SET result = EXCLUDED.result""",
                    outcome.command_id, outcome.tenant_id, uuid.UUID(env.session_id), outcome.command_type,
                    orjson.dumps(outcome.result).decode(), env.occurred_on, PURGED)
            now = time.time()
            for key, (qr, expires) in list(self.waiting.items()):
                if expires <= now:
                    del self.waiting[key]
                    continue
                sid, seq = key
                version = await conn.fetchval(
                    f"""WITH u AS (UPDATE {schema}.rm_sessions SET qr = $2, qr_expires_at = $3
                                   WHERE id = $1 AND version = $4 RETURNING version)
                        SELECT coalesce((SELECT version FROM u),
                                        (SELECT version FROM {schema}.rm_sessions WHERE id = $1))""",
                    uuid.UUID(sid), qr.qr, qr.expires_at, seq)
                if version is not None and version >= seq:
                    del self.waiting[key]  # shown, or the session moved on (connected, a newer QR)


def _expiry(expires_at: str) -> float:
    try:
        return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return time.time() + 60.0
