"""DELETE /tenant removes the tenant's data everywhere: every table with a tenant_id column holds no row of
it afterwards (but the few kept on purpose, which hold nothing personal), and its stored media files are gone
from S3. Another tenant's data is untouched. Session read models are covered by test_pii_erasure."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest

from tests.conftest import Stack, Tenant
from tests.e2e.test_campaigns import py_phone
from tests.e2e.test_pii_erasure import _owner_of
from tests.support import media_samples as samples
from tests.support.clients import eventually, read_records
from zapstream_platform.settings import KafkaSettings, S3Settings
from zapstream_platform.storage import MediaStore
from zapstream_platform.topics import Topics

# Kept on purpose (docs/events.md, "What is left"): rows without personal data that say the tenant existed
# and was deleted. users: anonymized; api_keys: revoked, digests only; pii_erasures: who was erased, when;
# tenant_purges: the purge's progress; session_registry: deleted sessions (an id is never reused); outbox:
# identity events already relayed (their personal fields were encrypted with keys now destroyed); rm_sessions:
# a purged session's tombstone (status deleted, phone null).
KEPT = {"users", "api_keys", "pii_erasures", "tenant_purges", "session_registry", "outbox", "rm_sessions"}


@pytest.fixture
async def media_store() -> AsyncIterator[MediaStore]:
    try:
        socket.create_connection(("127.0.0.1", 19000), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"S3 server not reachable ({exc}); run: bash infra/bin/s3.sh up && bash infra/bin/s3.sh wait",
                    pytrace=False)
    store = MediaStore(S3Settings())
    await store.ensure_bucket()
    yield store
    store.close()


async def _tables_with_tenant_id(pg: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pg.fetch(
        """SELECT c.table_schema, c.table_name FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
             AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
           ORDER BY 1, 2""")
    return [(r["table_schema"], r["table_name"]) for r in rows]


async def _rows_of(pg: asyncpg.Pool, tenant_id: str) -> dict[str, int]:
    found = {}
    for schema, table in await _tables_with_tenant_id(pg):
        n = await pg.fetchval(f'SELECT count(*) FROM "{schema}"."{table}" WHERE tenant_id = $1', tenant_id)
        if n:
            found[table] = int(n)
    return found


async def _fill(tenant: Tenant, pg: asyncpg.Pool, store: MediaStore) -> uuid.UUID:
    """Data of every kind for ``tenant``: through the API where the API writes it, and as the other services
    write theirs (campaign runner, analytics, projector, webhooks). Its campaign's id."""
    http = tenant.http
    up = await http.post("/media", data={"kind": "image"}, files={"file": ("promo.png", samples.png(40, 30))})
    assert up.status_code == 201, up.text
    phone = py_phone()
    r = await http.post("/address-book/contacts", json={"numero": phone, "nombre": "Ana", "grupo": "VIP"})
    assert r.status_code in (200, 201), r.text
    r = await http.post("/suppressions", json={"phone": phone})
    assert r.status_code in (200, 201), r.text
    endpoint = uuid.uuid4()
    await pg.execute("INSERT INTO webhook_endpoints (id, tenant_id, url, secret) VALUES ($1, $2, $3, 'whsec_x')",
                     endpoint, tenant.id, "https://example.com/hook")
    # What the other services write for the tenant.
    await pg.execute(
        """INSERT INTO webhook_deliveries (endpoint_id, tenant_id, event_id, event_type, session_id, body)
           VALUES ($1, $2, $3, 'session.messages.upsert', 's', '\\x7b7d')""", endpoint, tenant.id, str(uuid.uuid4()))
    campaign = uuid.uuid4()
    await pg.execute(
        """INSERT INTO campaigns (id, tenant_id, name, status, message, session_ids, pacing, timezone, created_at,
                                  updated_at)
           VALUES ($1, $2, 'promo', 'running', '{}', '{}', '{}', 'UTC', now(), now())""", campaign, tenant.id)
    await pg.execute(
        """INSERT INTO campaign_recipients (campaign_id, recipient_id, seq, tenant_id, phone, status, updated_at)
           VALUES ($1, 'r1', 1, $2, $3, 'sent', now())""", campaign, tenant.id, phone)
    await pg.execute(
        """INSERT INTO analytics_buckets (tenant_id, grain, bucket, dim, key, source_partition, sent)
           VALUES ($1, 'hour', date_trunc('hour', now()), 'contact', $2, 0, 1)""", tenant.id, phone)
    await pg.execute(
        """INSERT INTO projector_dead_letters (projection, topic, partition, "offset", tenant_id, value, headers,
                                              reason)
           VALUES ('main', 't', 0, $1, $2, '\\x00', '{}', 'test')""", uuid.uuid4().int % 10**12, tenant.id)
    key = f"tenants/{tenant.id}/sessions/{uuid.uuid4()}/messages/m1/photo.png"

    async def chunks() -> AsyncIterator[bytes]:
        yield samples.png(10, 10)

    await store.put_stream(key, chunks(), "image/png")
    return campaign


async def test_deleting_a_tenant_removes_its_rows_everywhere_and_its_files(
        stack: Stack, tenant_factory: object, pg: asyncpg.Pool, media_store: MediaStore,
        kafka: KafkaSettings) -> None:
    doomed: Tenant = await tenant_factory()  # type: ignore[operator]
    other: Tenant = await tenant_factory()  # type: ignore[operator]
    campaigns = {t.id: await _fill(t, pg, media_store) for t in (doomed, other)}
    before_other = await _rows_of(pg, other.id)
    other_files = await media_store.keys(f"tenants/{other.id}/")
    assert len(await media_store.keys(f"tenants/{doomed.id}/")) == 2  # the upload and the message's media
    for table in ("media_uploads", "address_book_contacts", "suppressions", "webhook_endpoints",
                  "webhook_deliveries", "campaigns", "campaign_recipients", "analytics_buckets",
                  "projector_dead_letters"):
        assert table in before_other, table

    owner = await _owner_of(stack, pg, doomed.id)
    try:
        r = await owner.delete("/tenant")
        assert r.status_code == 204, r.text
    finally:
        await owner.aclose()

    left = await _rows_of(pg, doomed.id)
    assert set(left) <= KEPT, left
    assert await media_store.keys(f"tenants/{doomed.id}/") == []
    assert await pg.fetchval("SELECT done_at IS NULL FROM tenant_purges WHERE tenant_id = $1", doomed.id)
    # Its unfinished campaign is cancelled (none may start later and write rows again); nobody else's.
    cancels = [orjson.loads(v) for v, _ in await read_records(kafka.bootstrap_servers,
                                                              Topics.from_settings(kafka).campaign_commands)]
    # Only this test's tenants: the rest of the suite shares the topic (its own campaigns are cancelled too).
    cancels = [cmd for cmd in cancels if cmd.get("type") == "campaign.cancel" and cmd.get("tenantId") in campaigns]
    assert [(cmd["tenantId"], cmd["campaignId"]) for cmd in cancels] == [(doomed.id, str(campaigns[doomed.id]))], (
        cancels, {t: str(c) for t, c in campaigns.items()})
    # The other tenant keeps everything.
    assert await _rows_of(pg, other.id) == before_other
    assert await media_store.keys(f"tenants/{other.id}/") == other_files

    # Rows an event still in flight (or a request authenticated before the deletion) writes after it are
    # removed by the sweep (settle window).
    await pg.execute("INSERT INTO suppressions (tenant_id, phone, reason, source) VALUES ($1, $2, 'x', 'manual')",
                     doomed.id, py_phone())
    await pg.execute(
        """INSERT INTO analytics_buckets (tenant_id, grain, bucket, dim, key, source_partition, sent)
           VALUES ($1, 'day', date_trunc('day', now()), 'all', '', 0, 1)""", doomed.id)
    await pg.execute("UPDATE tenant_purges SET settle_at = now() WHERE tenant_id = $1", doomed.id)

    async def swept() -> bool:
        return bool(await pg.fetchval("SELECT done_at IS NOT NULL FROM tenant_purges WHERE tenant_id = $1",
                                      doomed.id))

    await eventually(swept, timeout=90)
    assert set(await _rows_of(pg, doomed.id)) <= KEPT
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as anon:
        assert (await anon.delete("/tenant")).status_code == 401
