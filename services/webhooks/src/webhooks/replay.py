"""Replay from time T: re-send an endpoint's past events, read again from the event topic.

The API records a request in ``webhook_replays``; this loop reads the topic from the offsets at T up
to its current end and enqueues what the endpoint's filters want. A delivery of the same event that
already succeeded (or died) becomes pending again: receivers de-duplicate on ``webhook-id``.

QR and pairing codes: a redacted event is re-sent as its whole copy (with ``qr`` / ``result.code``) while the
secrets topic still has it (``KAFKA__SECRET_RETENTION_MS``, an hour by default); an older one is re-sent
as the event log keeps it, without the code (which had expired long before).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from webhooks import store
from webhooks.consumer import decode, deliveries_for
from webhooks.secrets import KafkaSource, SecretCopies
from webhooks.settings import Settings
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import partitions_of

log = logging.getLogger(__name__)
CHUNK = 500


async def run_replay(settings: Settings, pool: asyncpg.Pool, topic: str, request: dict[str, Any],
                     keys: KeyRing, secrets_topic: str) -> int:
    endpoint = store.Endpoint(request["endpoint_id"], request["tenant_id"], list(request["event_types"]),
                              list(request["session_ids"]))
    tps = [TopicPartition(topic, p) for p in await partitions_of(settings.kafka, topic)]
    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    # The secrets topic holds an hour at most: each partition is read from its start, when first needed.
    secrets_consumer = AIOKafkaConsumer(**settings.kafka.client_options(), isolation_level="read_committed",
                                        enable_auto_commit=False, auto_offset_reset="earliest")
    source = KafkaSource(secrets_consumer, secrets_topic)
    copies = SecretCopies(source, retention_ms=settings.kafka.secret_retention_ms, wait_s=settings.secret_wait_s)
    await consumer.start()
    await secrets_consumer.start()
    enqueued = 0
    try:
        consumer.assign(tps)
        await source.assign({tp.partition: None for tp in tps})
        ends = await consumer.end_offsets(tps)
        since = int(request["from_time"].timestamp() * 1000)
        starts = await consumer.offsets_for_times({tp: since for tp in tps})
        for tp in tps:
            found = starts.get(tp)
            if found is None:  # nothing at or after T in this partition
                continue
            consumer.seek(tp, found.offset)
            while await consumer.position(tp) < ends[tp]:
                batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=CHUNK)).get(tp, [])
                envs = [env for env in [await decode(r, keys) for r in batch] if env is not None]
                joined = await copies.join(tp.partition, batch, deliveries_for(envs, [endpoint]))
                if joined.deliveries:
                    async with pool.acquire() as conn, conn.transaction():
                        enqueued += await store.replay_enqueue(conn, joined.deliveries)
                copies.advance(tp.partition, joined.next_offset)
    finally:
        await consumer.stop()
        await secrets_consumer.stop()
    async with pool.acquire() as conn:
        await store.replay_done(conn, request["id"], enqueued)
    return enqueued


async def replay_loop(settings: Settings, pool: asyncpg.Pool, topic: str, stopping: asyncio.Event,
                      wake: Any, keys: KeyRing, *, secrets_topic: str) -> None:
    while not stopping.is_set():
        try:
            for request in await store.replays_todo(pool):
                n = await run_replay(settings, pool, topic, request, keys, secrets_topic)
                log.info("replay done", extra={"fields": {"replay": request["id"], "enqueued": n}})
                wake()
        except Exception as exc:
            log.warning("replay round failed", extra={"fields": {"error": repr(exc)[:300]}})
        try:
            await asyncio.wait_for(stopping.wait(), 2.0)
        except TimeoutError:
            pass
