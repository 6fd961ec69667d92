"""Operator API for dead letters: list both kinds and re-drive them.

Commands that kept failing sit in the command DLQ topic; re-driving produces
the original record to the command topic again. Events the projector could not
apply sit in ``projector_dead_letters``; re-driving asks the projector to apply
them again. Guarded by an operator token (``COMMAND_API_OPERATOR_TOKEN``);
without one configured the routes do not exist (404).
"""

import hmac
from typing import Annotated, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import APIRouter, Header
from pydantic import SecretStr

from command_api.problems import Problem
from zapstream_platform.http import JsonResponse
from zapstream_platform.topics import Topics, partitions_of, read_all


async def _command_dead_letters(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in await read_all(bootstrap, topic):
        headers = {k: v.decode(errors="replace") for k, v in r.headers}
        out.append({
            "id": f"{r.partition}:{r.offset}",
            "partition": r.partition,
            "offset": r.offset,
            "key": r.key.decode(errors="replace") if r.key else None,
            "reason": headers.get("zs_reason"),
            "origin": {"topic": headers.get("zs_origin_topic"),
                       "partition": headers.get("zs_origin_partition"),
                       "offset": headers.get("zs_origin_offset")},
            "failedAt": headers.get("zs_failed_at"),
            "value": r.value.decode(errors="replace"),
        })
    return out


async def _read_one(bootstrap: str, topic: str, partition: int, offset: int) -> Any | None:
    """The record at (partition, offset), or None; waits a few seconds at most."""
    if partition not in await partitions_of(bootstrap, topic) or offset < 0:
        return None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        if offset >= (await consumer.end_offsets([tp]))[tp]:
            return None
        consumer.seek(tp, offset)
        for _ in range(10):
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for record in batch.get(tp, []):
                return record if record.offset == offset else None
        return None
    finally:
        await consumer.stop()


def build_router(
    operator_token: SecretStr | None, pool: asyncpg.Pool, producer: AIOKafkaProducer, topics: Topics, bootstrap: str
) -> APIRouter:
    router = APIRouter(prefix="/dead-letters", tags=["operations"])

    def require_operator(token: str | None) -> None:
        if operator_token is None or not operator_token.get_secret_value():
            raise Problem(404, "not found")
        if not token or not hmac.compare_digest(token.encode(), operator_token.get_secret_value().encode()):
            raise Problem(401, "operator token required")

    Operator = Annotated[str | None, Header(alias="X-Operator-Token")]

    @router.get("")
    async def list_dead_letters(x_operator_token: Operator = None) -> JsonResponse:
        require_operator(x_operator_token)
        commands = await _command_dead_letters(bootstrap, topics.session_commands_dlq)
        rows = await pool.fetch(
            """SELECT id, projection, topic, partition, "offset", event_type, session_id, tenant_id, reason,
                      failed_at, redrive_requested_at, redriven_at
               FROM projector_dead_letters ORDER BY id DESC LIMIT 500"""
        )
        events = [
            {"id": r["id"], "projection": r["projection"], "topic": r["topic"], "partition": r["partition"],
             "offset": r["offset"], "type": r["event_type"], "sessionId": r["session_id"],
             "tenantId": r["tenant_id"], "reason": r["reason"], "failedAt": r["failed_at"].isoformat(),
             "redriveRequestedAt": r["redrive_requested_at"].isoformat() if r["redrive_requested_at"] else None,
             "redrivenAt": r["redriven_at"].isoformat() if r["redriven_at"] else None}
            for r in rows
        ]
        return JsonResponse({"commands": commands, "events": events})

    @router.post("/commands/{partition}/{offset}/redrive", status_code=202)
    async def redrive_command(partition: int, offset: int, x_operator_token: Operator = None) -> JsonResponse:
        require_operator(x_operator_token)
        record = await _read_one(bootstrap, topics.session_commands_dlq, partition, offset)
        if record is None:
            raise Problem(404, "dead letter not found")
        await producer.send_and_wait(
            topics.session_commands,
            value=record.value,
            key=record.key,
            headers=[("zs_redriven_from", f"{topics.session_commands_dlq}:{partition}:{offset}".encode())],
        )
        return JsonResponse({"status": "redriven", "id": f"{partition}:{offset}"}, status_code=202)

    @router.post("/events/{dead_letter_id}/redrive", status_code=202)
    async def redrive_event(dead_letter_id: int, x_operator_token: Operator = None) -> JsonResponse:
        require_operator(x_operator_token)
        updated = await pool.fetchval(
            """UPDATE projector_dead_letters SET redrive_requested_at = now()
               WHERE id = $1 AND redriven_at IS NULL RETURNING id""",
            dead_letter_id,
        )
        if updated is None:
            raise Problem(404, "dead letter not found or already re-driven")
        return JsonResponse({"status": "redrive requested", "id": updated}, status_code=202)

    return router
