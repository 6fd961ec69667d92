"""The faust analytics app against real Kafka and PostgreSQL: windows per tenant, group and contact, and a
rebuild from offset 0 (a new app id) that writes exactly the same rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from tests.conftest import service_env
from tests.support.clients import eventually
from tests.support.stack import LOG_DIR, Proc
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.pii import seal_envelope
from zapstream_contracts.timefmt import iso
from zapstream_platform.pii import data_key
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

T0 = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)


def envelope(type_: str, cid: str, payload: dict[str, Any], at: datetime, version: int) -> CampaignEnvelope:
    """A campaign event as the campaign runner writes it (value and CloudEvents headers)."""
    return CampaignEnvelope(type=type_, campaign_id=cid, event_id=str(uuid.uuid4()), occurred_on=iso(at),
                            payload=payload, version=version)


async def rows(pg: asyncpg.Pool, tenant: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pg.fetch(
        """SELECT grain, bucket, dim, key, sum(sent), sum(delivered), sum(read), sum(failed) FROM analytics_buckets
           WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""", tenant)]


def analytics_proc(name: str, kafka: KafkaSettings, dsn: str, app_id: str) -> Proc:
    return Proc(name, "analytics", service_env("ANALYTICS_", kafka, dsn) | {
        "ANALYTICS_APP_ID": app_id, "ANALYTICS_FLUSH_INTERVAL_S": "0.2",
        "ANALYTICS_DATA_DIR": str(LOG_DIR / app_id)})


async def test_windows_per_group_and_contact_and_identical_rebuild(
    infra: str, pg: asyncpg.Pool, kafka: KafkaSettings, topics: Topics, run_id: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    async with pg.acquire() as conn:  # the recipients' phones and groups are sealed as the campaign runner does
        key = await data_key(conn, tenant, tenant, "tenant")
    assert key is not None
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for c in range(3):
            cid = str(uuid.uuid4())
            recipients = [{"id": f"r{i}", "seq": i, "phone": f"5959810000{c}{i}", "grupo": "VIP" if i % 2 else None}
                          for i in range(4)]
            records = [("campaign.recipients.added", {"tenantId": tenant, "chunk": 0, "recipients": recipients}, T0)]
            for i in range(4):
                at = T0 + timedelta(hours=i)  # four hour windows, two days when i crosses midnight? no: same day
                ups = [{"recipientId": f"r{i}", "status": "sent", "at": iso(at)}]
                if i < 3:
                    ups.append({"recipientId": f"r{i}", "status": "read", "at": iso(at)})
                records.append(("campaign.recipients.updated", {"tenantId": tenant, "updates": ups}, at))
            for version, (type_, payload, at) in enumerate(records, start=1):
                env = seal_envelope(envelope(type_, cid, payload, at, version), key, tenant)
                await producer.send_and_wait(topics.campaign_events, env.value(), key=cid.encode(),
                                             headers=env.headers(), timestamp_ms=int(at.timestamp() * 1000))
    finally:
        await producer.stop()

    first = analytics_proc("analytics-a", kafka, infra, f"zt-{run_id}-an-a")
    first.start()
    try:
        async def counted() -> list[tuple[Any, ...]]:
            got = await rows(pg, tenant)
            total = sum(r[4] for r in got if r[0] == "hour" and r[2] == "all")
            return got if total == 12 else []

        before = await eventually(counted, timeout=90, interval=0.5)
    finally:
        first.stop()
    hours = [r for r in before if r[0] == "hour" and r[2] == "all"]
    assert [(r[1], r[4], r[6]) for r in hours] == [(T0.replace(minute=0) + timedelta(hours=i), 3, 3 if i < 3 else 0)
                                                    for i in range(4)]
    groups = {r[3]: r[4] for r in before if r[0] == "day" and r[2] == "group"}
    assert groups == {"": 6, "VIP": 6}
    contacts = {r[3] for r in before if r[0] == "day" and r[2] == "contact"}
    assert contacts == {f"5959810000{c}{i}" for c in range(3) for i in range(4)}  # decrypted with the tenant's key

    await pg.execute("DELETE FROM analytics_buckets WHERE tenant_id = $1", tenant)
    second = analytics_proc("analytics-b", kafka, infra, f"zt-{run_id}-an-b")
    second.start()
    try:
        after = await eventually(counted, timeout=90, interval=0.5)
    finally:
        second.stop()
    assert after == before
