"""SIGKILL the projector in the middle of a batch.

The projector is stopped while 800 messages are sent, so it restarts with a
backlog of several thousand events and works through batches of up to 1,000.
It is then SIGKILLed three times, each time while PostgreSQL shows its
connection inside an open transaction (a batch half-applied), and restarted.
The rows of the half-applied batches must vanish with the transaction and be
applied exactly once after the restart: the read model equals a fresh replay.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.conftest import Stack
from tests.faults.support import settled_records, verify_everything, wait_until
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

TOTAL = 800
KILLS = 3


async def _projector_in_transaction(admin: asyncpg.Connection, db: str) -> bool:
    """True while some client of ``db`` holds an open transaction that has written rows."""
    rows = await admin.fetch(
        """SELECT pid FROM pg_stat_activity
           WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL""", db)
    return bool(rows)


async def test_projector_sigkilled_mid_batch(
    stack: Stack, make_load, sim: httpx.AsyncClient, infra: str,  # type: ignore[no-untyped-def]
    kafka: KafkaSettings, topics: Topics, record,  # type: ignore[no-untyped-def]
) -> None:
    projector = stack.procs["projector"]
    load = await make_load(4)
    t0 = time.monotonic()
    projector.stop()
    try:
        await load.run(TOTAL, rate=200)

        assert len(load.accepted) == TOTAL, f"{load.uncertain} uncertain, rejected {dict(load.rejected)}"
        await settled_records(kafka.bootstrap_servers, topics.session_events, load, timeout=120)
    finally:
        await load.http.aclose()

    db = infra.rsplit("/", 1)[-1]
    admin = await asyncpg.connect(infra)
    mid_batch = 0
    try:
        for _ in range(KILLS):
            projector.start()

            async def in_tx() -> bool:
                return await _projector_in_transaction(admin, db)

            try:
                await wait_until(in_tx, 30, interval=0.02, what="projector inside a batch transaction")
                mid_batch += 1
            finally:
                projector.kill()
            await asyncio.sleep(0.5)
            # The killed connection's transaction must be gone (rolled back), not committed later.
            await wait_until(lambda: _no_tx(admin, db), 30, interval=0.2, what="orphaned transaction rolled back")
        projector.start()
    finally:
        await admin.close()

    figures = await verify_everything(dsn=infra, bootstrap=kafka.bootstrap_servers, topic=topics.session_events,
                                      sim=sim, load=load)
    record(accepted=len(load.accepted), kills=KILLS, kills_inside_open_transaction=mid_batch,
           total_s=round(time.monotonic() - t0, 1), **figures)
    assert mid_batch == KILLS


async def _no_tx(admin: asyncpg.Connection, db: str) -> bool:
    return not await _projector_in_transaction(admin, db)
