"""Zero-downtime rebuild: the API keeps reading the old version until one transaction swaps in the new one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from projector.replay import active_schema, compare, replay
from projector.settings import Settings
from tests.conftest import Stack
from tests.support.clients import FORGED_SOURCE, eventually, produce_envelopes
from zapstream_contracts import commands as c
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.payloads import MessageSummary
from zapstream_domain.decisions import decide
from zapstream_platform.settings import KafkaSettings, PostgresSettings
from zapstream_platform.topics import Topics

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _events(tenant: str, messages: int) -> tuple[str, list[Envelope]]:
    sid = str(uuid.uuid4())
    cmd = c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=tenant, issued_at="x")
    s, events = decide(None, cmd, NOW)
    assert s is not None
    s.record_connected(NOW, "51999999999")
    for i in range(messages):
        s.record_incoming(NOW, [MessageSummary(id=f"r{i}", remote_jid="51977776666@s.whatsapp.net", from_me=False,
                                               timestamp=1000 + i, text=str(i))])
    events += s.collect_events()
    return sid, [Envelope.from_domain(e) for e in events]


async def _count(pg: asyncpg.Pool, sid: str) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM rm_messages WHERE session_id = $1", uuid.UUID(sid)))


async def test_rebuild_swaps_in_a_new_version_while_reads_continue(
    stack: Stack, infra: str, pg: asyncpg.Pool, kafka: KafkaSettings
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    sid, first = _events(tenant, 300)
    await produce_envelopes(kafka.bootstrap_servers, Topics.from_settings(kafka).session_events, first)
    await eventually(lambda: _count_is(pg, sid, 300), timeout=30)
    before = await active_schema(pg, "main")

    # Readers through the public views never see an empty or partial table during the rebuild.
    stop = asyncio.Event()
    seen: list[int] = []

    async def reader() -> None:
        while not stop.is_set():
            seen.append(await _count(pg, sid))
            await asyncio.sleep(0.005)

    reading = asyncio.create_task(reader())
    more_sid, more = _events(tenant, 50)
    writer = asyncio.create_task(produce_envelopes(kafka.bootstrap_servers, Topics.from_settings(kafka).session_events, more))  # live traffic during the rebuild
    lines: list[str] = []
    settings = Settings(kafka=kafka, postgres=PostgresSettings(dsn=infra), batch_max=100)
    summary = await replay(settings, pg, keep_old=True, progress_out=lines.append)
    await writer
    stop.set()
    await reading

    after = await active_schema(pg, "main")
    assert summary["from"] == before and summary["to"] == after != before
    assert min(seen) == 300 and seen[-1] == 300
    assert any("ev/s" in line and "ETA" in line for line in lines)
    # The live projector continues in the new schema.
    await eventually(lambda: _count_is(pg, more_sid, 50), timeout=30)
    report = await compare(pg, before, after, tenant_id=tenant)
    assert report["rm_messages"]["rows"][1] >= report["rm_messages"]["rows"][0]  # type: ignore[index]

    # A second rebuild with nothing moving is identical to the version it replaces.
    again = await replay(settings, pg, keep_old=True, progress_out=lines.append)
    # (Only this test's tenant: sessions of other tests may still be receiving events.)
    report = await compare(pg, str(again["from"]), str(again["to"]), tenant_id=tenant)
    assert all(r["equal"] for r in report.values()), report
    for schema in (before, str(again["from"])):
        await pg.execute(f"DROP SCHEMA {schema} CASCADE")


async def _count_is(pg: asyncpg.Pool, sid: str, n: int) -> bool:
    return await _count(pg, sid) == n


async def test_a_rebuild_parks_a_poison_event_like_the_live_projector_and_goes_on(
    stack: Stack, infra: str, pg: asyncpg.Pool, kafka: KafkaSettings
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    sid = str(uuid.uuid4())
    # An upsert with no messages does not fit its contract; the session's next event is fine.
    broken = Envelope(type="session.messages.upsert", session_id=sid, event_id=str(uuid.uuid4()),
                      occurred_on="2026-01-01T00:00:00.000Z", payload={"tenantId": tenant}, version=1)
    fine = Envelope(type="session.created", session_id=sid, event_id=str(uuid.uuid4()),
                    occurred_on="2026-01-01T00:00:00.000Z",
                    payload={"tenantId": tenant, "id": sid, "status": "created",
                             "createdAt": "2026-01-01T00:00:00.000Z"}, version=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=f"t-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            for env in (broken, fine):
                # Marked as forged: the topic reader (test_topic_reader) leaves deliberate corruption aside.
                await producer.send(Topics.from_settings(kafka).session_events, env.value(), key=sid.encode(),
                                    headers=env.headers(FORGED_SOURCE))
    finally:
        await producer.stop()

    async def session_row() -> bool:
        return bool(await pg.fetchval("SELECT 1 FROM rm_sessions WHERE id = $1", uuid.UUID(sid)))

    await eventually(session_row, timeout=60)  # the live projector parked the upsert and moved on

    settings = Settings(kafka=kafka, postgres=PostgresSettings(dsn=infra), batch_max=100, retry_backoff_s=0.01)
    summary = await replay(settings, pg)
    assert int(summary["dead_lettered"]) >= 1  # type: ignore[call-overload]
    assert await session_row()  # read through the views: the rebuilt schema, swapped in
    parked = await pg.fetch("SELECT projection, event_type, reason FROM projector_dead_letters WHERE session_id = $1",
                            sid)
    # One dead letter, listed under the projection the rebuild replaced (the live projector's own, re-driven by it).
    assert [(r["projection"], r["event_type"]) for r in parked] == [("main", "session.messages.upsert")]
    assert parked[0]["reason"].startswith("ValidationError")
