"""Dead letters' storage: the command DLQ topic (Kafka) and ``projector_dead_letters`` (PostgreSQL)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from zapstream_platform.topics import Topics, partitions_of, read_all


class DeadLettersRepository:
    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, topics: Topics, bootstrap: str) -> None:
        self.pool = pool
        self.producer = producer
        self.topics = topics
        self.bootstrap = bootstrap

    async def commands(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for r in await read_all(self.bootstrap, self.topics.session_commands_dlq):
            headers = {k: v.decode(errors="replace") for k, v in r.headers}
            out.append({
                "id": f"{r.partition}:{r.offset}", "partition": r.partition, "offset": r.offset,
                "key": r.key.decode(errors="replace") if r.key else None,
                "reason": headers.get("zs_reason"),
                "origin": {"topic": headers.get("zs_origin_topic"),
                           "partition": headers.get("zs_origin_partition"),
                           "offset": headers.get("zs_origin_offset")},
                "failedAt": headers.get("zs_failed_at"),
                "value": r.value.decode(errors="replace"),
            })
        return out

    async def events(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT id, projection, topic, partition, "offset", event_type, session_id, tenant_id, reason,
                      failed_at, redrive_requested_at, redriven_at
               FROM projector_dead_letters ORDER BY id DESC LIMIT 500""")
        return [
            {"id": r["id"], "projection": r["projection"], "topic": r["topic"], "partition": r["partition"],
             "offset": r["offset"], "type": r["event_type"], "sessionId": r["session_id"],
             "tenantId": r["tenant_id"], "reason": r["reason"], "failedAt": r["failed_at"].isoformat(),
             "redriveRequestedAt": r["redrive_requested_at"].isoformat() if r["redrive_requested_at"] else None,
             "redrivenAt": r["redriven_at"].isoformat() if r["redriven_at"] else None}
            for r in rows
        ]

    async def redrive_command(self, partition: int, offset: int) -> bool:
        """Produce the dead command at (partition, offset) to the command topic again; False if there is none."""
        dlq = self.topics.session_commands_dlq
        if partition not in await partitions_of(self.bootstrap, dlq) or offset < 0:
            return False
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level="read_committed",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(dlq, partition)
            consumer.assign([tp])
            if offset >= (await consumer.end_offsets([tp]))[tp]:
                return False
            consumer.seek(tp, offset)
            record = None
            for _ in range(10):
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                found = batch.get(tp, [])
                if found:
                    record = found[0] if found[0].offset == offset else None
                    break
        finally:
            await consumer.stop()
        if record is None:
            return False
        await self.producer.send_and_wait(
            self.topics.session_commands, value=record.value, key=record.key,
            # The command's own CloudEvents headers go with it; the dead-letter ones (zs_*) do not.
            headers=[*((k, v) for k, v in (record.headers or ()) if not k.startswith("zs_")),
                     ("zs_redriven_from", f"{dlq}:{partition}:{offset}".encode())])
        return True

    async def request_event_redrive(self, dead_letter_id: int) -> int | None:
        updated = await self.pool.fetchval(
            """UPDATE projector_dead_letters SET redrive_requested_at = now()
               WHERE id = $1 AND redriven_at IS NULL RETURNING id""", dead_letter_id)
        return None if updated is None else int(updated)
