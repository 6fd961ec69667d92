"""Poison input: after bounded retries it goes to a dead letter with its reason, and the partition moves on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from tests.conftest import OPERATOR_TOKEN, Stack, Tenant
from tests.support.clients import FORGED_SOURCE, eventually, read_records
from zapstream_contracts.commands import parse_command
from zapstream_contracts.envelope import Envelope, command_headers
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics


def _command(session_id: str, tenant: str) -> bytes:
    return orjson.dumps({"type": "session.create", "commandId": str(uuid.uuid4()), "sessionId": session_id,
                         "tenantId": tenant,
                         "issuedAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")})


async def test_poison_command_is_dead_lettered_and_the_partition_moves_on(
    stack: Stack, tenant: Tenant, kafka: KafkaSettings, topics: Topics, pg: asyncpg.Pool
) -> None:
    good = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        # Same key, so same partition: the good command is stuck behind the poison until it is moved aside.
        # A sessionId that is not a UUID passes parsing but breaks the decision: a forged record.
        for body in (_command("not-a-uuid", tenant.id), _command(good, tenant.id)):
            await producer.send_and_wait(topics.session_commands, body, key=good.encode(),
                                         headers=command_headers(parse_command(body), "/tests"))
    finally:
        await producer.stop()

    async def dead_lettered() -> list[dict[str, bytes]]:
        records = await read_records(kafka.bootstrap_servers, topics.session_commands_dlq)
        return [dict(h) for v, h in records if orjson.loads(v)["sessionId"] == "not-a-uuid"]

    async def created() -> bool:
        return bool(await pg.fetchval("SELECT 1 FROM rm_sessions WHERE id = $1", uuid.UUID(good)))

    await eventually(created, timeout=60)
    (headers,) = await eventually(dead_lettered, timeout=30)
    assert headers["zs_reason"].startswith(b"ValueError")
    assert headers["zs_origin_topic"] == topics.session_commands.encode()

    # The operator API lists it and can re-drive it (it fails again, so it lands in the DLQ a second time).
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"X-Operator-Token": OPERATOR_TOKEN}) as ops:
        listed = (await ops.get("/dead-letters")).json()["commands"]
        mine = [d for d in listed if orjson.loads(d["value"])["sessionId"] == "not-a-uuid"]
        assert mine and mine[0]["reason"].startswith("ValueError")
        r = await ops.post(f"/dead-letters/commands/{mine[0]['partition']}/{mine[0]['offset']}/redrive")
        assert r.status_code == 202, r.text
        assert (await ops.get("/dead-letters", headers={"X-Operator-Token": "wrong"})).status_code == 401
    assert (await tenant.http.get("/dead-letters")).status_code == 401

    async def twice() -> bool:
        return len(await dead_lettered()) == 2

    await eventually(twice, timeout=60)


async def test_poison_event_is_parked_then_redriven_on_request(
    stack: Stack, tenant: Tenant, kafka: KafkaSettings, topics: Topics, pg: asyncpg.Pool
) -> None:
    sid = str(uuid.uuid4())
    broken = Envelope(type="session.messages.upsert", session_id=sid, event_id=str(uuid.uuid4()),
                      occurred_on="2026-01-01T00:00:00.000Z", payload={"tenantId": tenant.id}, version=1)
    fine = Envelope(type="session.created", session_id=sid, event_id=str(uuid.uuid4()),
                    occurred_on="2026-01-01T00:00:00.000Z",
                    payload={"tenantId": tenant.id, "id": sid, "status": "created",
                             "createdAt": "2026-01-01T00:00:00.000Z"}, version=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=f"t-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            for env in (broken, fine):
                # Marked as forged: the topic reader (test_topic_reader) leaves deliberate corruption aside.
                await producer.send(topics.session_events, env.value(), key=sid.encode(),
                                    headers=env.headers(FORGED_SOURCE))
    finally:
        await producer.stop()

    async def parked() -> asyncpg.Record | None:
        return await pg.fetchrow("SELECT * FROM projector_dead_letters WHERE session_id = $1", sid)

    row = await eventually(parked, timeout=60)
    # The projector reads payloads through the contract's models: the upsert without messages does not fit.
    assert row["event_type"] == "session.messages.upsert" and row["reason"].startswith("ValidationError")
    assert "MessagesUpsert" in row["reason"]

    async def moved_on() -> bool:
        return bool(await pg.fetchval("SELECT 1 FROM rm_sessions WHERE id = $1", uuid.UUID(sid)))

    await eventually(moved_on, timeout=30)

    # Re-driving an event that is still broken keeps it parked, with the new reason.
    await pg.execute("UPDATE projector_dead_letters SET redrive_requested_at = now() WHERE id = $1", row["id"])

    async def retried() -> bool:
        again = await pg.fetchrow("SELECT * FROM projector_dead_letters WHERE id = $1", row["id"])
        return again["redrive_requested_at"] is None and again["reason"].startswith("redrive failed")

    await eventually(retried, timeout=30)
