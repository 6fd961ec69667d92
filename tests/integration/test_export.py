"""The analysts' export: a topic from offset 0 into one flat, typed table per event type (Parquet or CSV)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.clients import produce_envelopes
from zapstream_contracts.envelope import Envelope, dataschema, identity_headers
from zapstream_contracts.identity_events import identity_dataschema
from zapstream_contracts.payloads import MessageSummary
from zapstream_domain.session import Session
from zapstream_platform import export, pii
from zapstream_platform.settings import KafkaSettings

AT = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)


async def _topic(kafka: KafkaSettings) -> str:
    # Not "<prefix>.": scratch topics are no part of the stack (the topic reader reads all of those).
    name = f"{kafka.topic_prefix}-export.{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    return name


ZAPSTREAM = str(Path(sys.executable).parent / "zapstream")  # the console script `uv sync` installs


async def cli(kafka: KafkaSettings, *argv: str) -> tuple[int | None, str, str]:
    """Run the export as an analyst does, in its own process; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, "ZAPSTREAM_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


async def test_export_writes_one_flat_table_per_type(kafka: KafkaSettings, infra: str, tmp_path: Path) -> None:
    topic = await _topic(kafka)
    sessions = []
    for n in range(3):
        s = Session.create(uuid.uuid4(), "t1", AT)
        s.record_connected(AT, f"5199900000{n}")
        s.record_incoming(AT, [MessageSummary(id=f"m{n}", remote_jid="51988887777@s.whatsapp.net", from_me=False,
                                              timestamp=1767225720, text="hola")])
        sessions.append(s)
    await produce_envelopes(kafka.bootstrap_servers, topic,
                            [Envelope.from_domain(e) for s in sessions for e in s.collect_events()])
    # A v1 record written before `retryable` existed: exported upcast, like every reader sees it.
    sid = str(sessions[0].id)
    old = {"type": "session.command.failed", "sessionId": sid, "eventId": str(uuid.uuid4()),
           "occurredOn": "2026-01-01T00:03:00.000Z",
           "payload": {"tenantId": "t1", "commandId": "c1", "commandType": "session.send_message",
                       "code": "not_connected", "reason": "r"}}
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(old), key=sid.encode(), headers=[
            ("ce_dataschema", dataschema("session.command.failed", 1).encode()), ("ce_sequence", b"4")])
    finally:
        await producer.stop()

    seen: list[tuple[int, int]] = []
    rows = await export.read_rows(kafka, topic, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1]  # offsets (transaction markers included) up to the end it began with
    assert sum(len(r) for t, r in rows.items() if "__" not in t) == 10
    written = export.write_tables(rows, tmp_path / "parquet", "parquet")
    assert set(written) == {"session.created", "session.status.connected", "session.messages.upsert",
                            "session.messages.upsert__messages", "session.command.failed"}

    connected = pq.read_table(written["session.status.connected"])
    assert connected.num_rows == 3
    assert str(connected.schema.field("occurred_on").type) == "timestamp[us, tz=UTC]"
    assert str(connected.schema.field("sequence").type) == "int64"
    assert sorted(connected.column("payload.phone").to_pylist()) == [f"5199900000{n}" for n in range(3)]

    upsert = pq.read_table(written["session.messages.upsert"]).to_pylist()
    assert orjson.loads(upsert[0]["payload.messages"])[0]["text"] == "hola"
    # The list of messages is also a table of its own, one typed row per message, keyed by the event.
    items = pq.read_table(written["session.messages.upsert__messages"])
    assert str(items.schema.field("messages.fromMe").type) == "bool"
    assert str(items.schema.field("messages.timestamp").type) == "int64"
    assert {r["event_id"] for r in items.to_pylist()} == {r["event_id"] for r in upsert}

    failed = pq.read_table(written["session.command.failed"]).to_pylist()
    assert failed[0]["payload.retryable"] is True and failed[0]["schema_version"] == 1

    csv = export.write_tables(rows, tmp_path / "csv", "csv")
    assert pacsv.read_csv(csv["session.created"]).num_rows == 3

    # --since: by the records' Kafka timestamps (all were written just now).
    assert await export.read_rows(kafka, topic, since=datetime.now(UTC) + timedelta(hours=1)) == {}
    assert sum(len(r) for t, r in (await export.read_rows(kafka, topic, since=AT)).items() if "__" not in t) == 10

    # The older operator spelling still works.
    code, out, err = await cli(kafka, sys.executable, "-m", "zapstream_platform", "export", "--topic", topic,
                               "--out", str(tmp_path / "cli"), "--format", "csv")
    assert code == 0, err
    assert "session.created: 3 rows" in out and "records" in err  # the progress bar
    assert (tmp_path / "cli" / "session.messages.upsert.csv").exists()
    # Bad input: a clear message and a non-zero exit, no traceback.
    code, out, err = await cli(kafka, ZAPSTREAM, "events", "export", "--topic", f"{topic}-missing")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code, out, err = await cli(kafka, ZAPSTREAM, "events", "export", "--topic", topic, "--since", "yesterday")
    assert code == 2 and "not a date or RFC 3339 time" in err


async def test_export_reveals_personal_data_until_the_user_is_erased(kafka: KafkaSettings, pg: asyncpg.Pool,
                                                                     tmp_path: Path) -> None:
    topic = await _topic(kafka)
    users = [str(uuid.uuid4()) for _ in range(2)]
    async with pg.acquire() as conn:
        keys = [await pii.data_key(conn, u, "t1") for u in users]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for n, (user, key) in enumerate(zip(users, keys, strict=True)):
            assert key is not None
            payload = pii.encrypt_fields({"userId": user, "email": f"u{n}@example.com", "name": f"U{n}",
                                          "role": "agent"}, ("email", "name"), key, user)
            event_id, occurred_on = str(uuid.uuid4()), "2026-01-01T00:00:00.000Z"
            value = {"type": "user.created", "eventId": event_id, "occurredOn": occurred_on, "tenantId": "t1",
                     "payload": payload}
            await producer.send_and_wait(topic, orjson.dumps(value), key=b"t1", headers=identity_headers(
                "user.created", event_id, occurred_on, "t1", identity_dataschema("user.created"), "/tests"))
    finally:
        await producer.stop()
    async with pg.acquire() as conn, conn.transaction():
        assert await pii.erase(conn, users[0], "t1", by="test")

    plain = await export.read_rows(kafka, topic)
    assert all(pii.is_encrypted(r["payload.email"]) for r in plain["user.created"])
    revealed = await export.read_rows(kafka, topic, pii.Revealer(pg).reveal)
    emails = {r["payload.userId"]: r["payload.email"] for r in revealed["user.created"]}
    assert emails == {users[0]: pii.ERASED, users[1]: "u1@example.com"}
    table = pq.read_table(export.write_tables(revealed, tmp_path, "parquet")["user.created"])
    assert sorted(table.column("payload.name").to_pylist()) == sorted([pii.ERASED, "U1"])
