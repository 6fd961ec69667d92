"""The projector writes rows and offsets in one PostgreSQL transaction (real Kafka and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from projector.app import Projector
from projector.settings import Settings
from tests.support.clients import eventually, produce_envelopes
from zapstream_contracts import commands as c
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.payloads import MessageSummary, StatusUpdate
from zapstream_domain.decisions import decide
from zapstream_platform.settings import KafkaSettings, PostgresSettings
from zapstream_platform.topics import Topics, ensure_topics

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _session_events(tenant: str, n_messages: int) -> list[Envelope]:
    sid = str(uuid.uuid4())
    cmd = c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=tenant, issued_at="x")
    session, events = decide(None, cmd, NOW)
    assert session is not None
    session.record_connected(NOW, "51999999999")
    for i in range(n_messages):
        msg = MessageSummary(id=f"in-{i}", remote_jid="51988887777@s.whatsapp.net", from_me=False, timestamp=1000 + i,
                             text=f"m{i}")
        session.record_incoming(NOW, [msg])
    session.record_receipts(NOW, [StatusUpdate(message_id="in-0", status="read", status_at=2000)])
    events += session.collect_events()
    return [Envelope.from_domain(e) for e in events]


async def _run_until(projector: Projector, pool: asyncpg.Pool, projection: str, expected: int) -> None:
    task = asyncio.create_task(projector.run())
    try:
        async def caught_up() -> bool:
            total = await pool.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM projector_offsets WHERE projection = $1", projection
            )
            return bool(total >= expected)

        await eventually(caught_up, timeout=30)
    finally:
        projector.request_stop()
        await task


async def test_restarted_projector_resumes_from_its_postgres_offsets(
    infra: str, pg: asyncpg.Pool, kafka: KafkaSettings
) -> None:
    # A private topic, so the offsets we assert on count only this test's records.
    private = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}-proj-{uuid.uuid4().hex[:6]}"})
    await ensure_topics(private)
    topic = Topics.from_settings(private).session_events
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    first = _session_events(tenant, 5)
    await produce_envelopes(private.bootstrap_servers, topic, first)

    projection = f"test-{uuid.uuid4().hex[:6]}"
    settings = Settings(kafka=private, postgres=PostgresSettings(dsn=infra), projection=projection,
                        group_id=f"g-{projection}", batch_max=3)
    await _run_until(Projector(settings, pg), pg, projection, len(first))

    sid = first[0].session_id
    assert await pg.fetchval("SELECT count(*) FROM rm_messages WHERE session_id = $1", uuid.UUID(sid)) == 5
    assert await pg.fetchval("SELECT unread_count FROM rm_chats WHERE session_id = $1", uuid.UUID(sid)) == 5
    assert await pg.fetchval("SELECT status FROM rm_sessions WHERE id = $1", uuid.UUID(sid)) == "connected"

    # A second instance (a restart) must not apply anything twice: unread counts would drift.
    second = _session_events(tenant, 2)
    await produce_envelopes(private.bootstrap_servers, topic, second)
    await _run_until(Projector(settings, pg), pg, projection, len(first) + len(second))
    assert await pg.fetchval("SELECT unread_count FROM rm_chats WHERE session_id = $1", uuid.UUID(sid)) == 5
    sid2 = uuid.UUID(second[0].session_id)
    assert await pg.fetchval("SELECT unread_count FROM rm_chats WHERE session_id = $1", sid2) == 2
    assert await pg.fetchval("SELECT status FROM rm_messages WHERE session_id = $1 AND id = 'in-0'", sid2) == "read"
