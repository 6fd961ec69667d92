"""The projector takes QR and pairing codes from the secrets topic, in whichever order the two copies arrive."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from projector.handlers import project
from projector.secrets import SecretsApplier
from tests.support.clients import eventually
from zapstream_contracts import commands as c
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope, dataschema
from zapstream_domain.decisions import decide
from zapstream_domain.session import Session
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

NOW = datetime.now(UTC)
LATER = "2999-01-01T00:00:00.000Z"  # the QR has not expired while the test runs


async def _project(pg: asyncpg.Pool, envs: list[Envelope]) -> None:
    async with pg.acquire() as conn, conn.transaction():
        schema = await conn.fetchval("SELECT active_schema FROM projections WHERE name = 'main'")
        await project(conn, schema, envs)


async def _session_row(pg: asyncpg.Pool, sid: str) -> asyncpg.Record:
    row = await pg.fetchrow("SELECT status, qr, qr_expires_at, version FROM rm_sessions WHERE id = $1",
                            uuid.UUID(sid))
    assert row is not None
    return row


def _new_session(tenant: str) -> tuple[Session, list[Envelope]]:
    sid = str(uuid.uuid4())
    session, events = decide(None, c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=tenant,
                                                   issued_at="x"), NOW)
    assert session is not None
    events += session.collect_events()
    return session, [Envelope.from_domain(e) for e in events]


def _qr(session: Session, code: str) -> tuple[Envelope, Envelope]:
    """(the redacted event for the log, its whole copy for the secrets topic)."""
    assert session.record_qr(NOW, LATER)
    [event] = session.collect_events()
    env = Envelope.from_domain(event)
    return env, secrets.with_qr(env, code)


async def test_a_qr_shows_once_its_event_is_projected_and_never_after_the_session_moved_on(
        pg: asyncpg.Pool, kafka: KafkaSettings) -> None:
    applier = SecretsApplier(kafka, pg)
    session, created = _new_session(f"t-{uuid.uuid4().hex[:8]}")
    first, first_whole = _qr(session, "2@first")
    # The copy can be read before the projector got to the event: it waits.
    await applier.apply([first_whole])
    assert applier.waiting
    await _project(pg, [*created, first])
    assert (await _session_row(pg, session.session_id))["qr"] is None  # the log has no code
    await applier.apply([])
    row = await _session_row(pg, session.session_id)
    assert (row["status"], row["qr"], row["qr_expires_at"]) == ("qr_pending", "2@first", LATER)
    assert not applier.waiting

    # A new QR: the log's event clears the old code; its copy puts the new one in.
    second, second_whole = _qr(session, "2@second")
    await _project(pg, [second])
    assert (await _session_row(pg, session.session_id))["qr"] is None
    await applier.apply([second_whole])
    assert (await _session_row(pg, session.session_id))["qr"] == "2@second"

    # Linked: the QR is gone, and a late (or re-read) copy of an older QR does not bring it back.
    session.record_connected(NOW, "51999999999")
    await _project(pg, [Envelope.from_domain(e) for e in session.collect_events()])
    await applier.apply([first_whole, second_whole])
    row = await _session_row(pg, session.session_id)
    assert (row["status"], row["qr"]) == ("connected", None)
    assert not applier.waiting


async def test_a_pairing_code_reaches_the_command_outcome_in_either_order(pg: asyncpg.Pool,
                                                                          kafka: KafkaSettings) -> None:
    applier = SecretsApplier(kafka, pg)
    session, created = _new_session(f"t-{uuid.uuid4().hex[:8]}")
    await _project(pg, created)
    outcomes = []
    for _ in range(2):
        command_id = str(uuid.uuid4())
        session.record_command_succeeded(NOW, command_id, c.RequestPairCode.TYPE, {"phone": "51955555555"})
        [event] = session.collect_events()
        env = Envelope.from_domain(event)
        outcomes.append((command_id, env, secrets.with_pair_code(env, f"CODE-{command_id[:4]}")))
    (early, early_env, early_whole), (late, late_env, late_whole) = outcomes
    await applier.apply([early_whole])  # the copy first, then the log's success
    await _project(pg, [early_env, late_env])  # the log's success first, then the copy
    await applier.apply([late_whole])
    for command_id in (early, late):
        row = await pg.fetchrow("SELECT status, command_type, result::text AS result FROM rm_commands "
                                "WHERE command_id = $1", command_id)
        assert row is not None and (row["status"], row["command_type"]) == ("succeeded", c.RequestPairCode.TYPE)
        assert f"CODE-{command_id[:4]}" in row["result"] and "51955555555" in row["result"]


async def test_the_applier_follows_the_topic(pg: asyncpg.Pool, kafka: KafkaSettings) -> None:
    applier = SecretsApplier(kafka, pg, lookback_s=600)
    session, created = _new_session(f"t-{uuid.uuid4().hex[:8]}")
    event, whole = _qr(session, "2@from-kafka")
    await _project(pg, [*created, event])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(Topics.from_settings(kafka).session_secrets, whole.value(),
                                     key=whole.session_id.encode(), headers=secrets.headers(whole, "/tests"))
    finally:
        await producer.stop()
    stopping = asyncio.Event()
    task = asyncio.create_task(applier.run(stopping))
    try:
        async def shown() -> bool:
            return (await _session_row(pg, session.session_id))["qr"] == "2@from-kafka"

        await eventually(shown, timeout=30)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def test_v1_records_with_their_codes_project_without_them(pg: asyncpg.Pool) -> None:
    # What a replay meets in a log written before v2: the QR inside session.qr.updated.
    session, created = _new_session(f"t-{uuid.uuid4().hex[:8]}")
    v1 = orjson.dumps({"type": "session.qr.updated", "sessionId": session.session_id, "eventId": str(uuid.uuid4()),
                       "occurredOn": "2026-01-01T00:00:00.000Z",
                       "payload": {"tenantId": session.tenant_id, "qr": "2@v1-secret", "expiresAt": LATER}})
    old = Envelope.from_record(v1, [("ce_dataschema", dataschema("session.qr.updated", 1).encode()),
                                    ("ce_sequence", b"2")])
    await _project(pg, [*created, old])
    row = await _session_row(pg, session.session_id)
    assert (row["status"], row["qr"], row["qr_expires_at"], row["version"]) == ("qr_pending", None, LATER, 2)
