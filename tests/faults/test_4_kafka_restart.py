"""Restart the Kafka broker (``infra/bin/kafka.sh down``, ``up``, ``wait``) while messages are being sent.

This is the shared broker: that is why the fault suite is its own ``make
test-faults`` and not part of ``make test``. POSTs during the outage may fail
(503/500 or a timeout): those are uncertain, never expected, and may appear at
most once. Every service must ride the outage out without being restarted;
afterwards every accepted message reached WhatsApp once, the topic holds every
event once, and the read model equals a fresh replay.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import httpx

from tests.conftest import Stack
from tests.faults.support import verify_everything
from tests.support.stack import REPO
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

TOTAL = 600


def kafka_sh(cmd: str) -> None:
    subprocess.run(["bash", str(REPO / "infra" / "bin" / "kafka.sh"), cmd], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)


async def test_kafka_restart_during_load(
    stack: Stack, make_load, sim: httpx.AsyncClient, infra: str,  # type: ignore[no-untyped-def]
    kafka: KafkaSettings, topics: Topics, record,  # type: ignore[no-untyped-def]
) -> None:
    load = await make_load(4)
    t0 = time.monotonic()
    loader = asyncio.create_task(load.run(TOTAL, rate=40))
    try:
        await asyncio.sleep(4)
        t_down = time.monotonic()
        try:
            await asyncio.to_thread(kafka_sh, "down")
            await asyncio.sleep(2)
        finally:
            await asyncio.to_thread(kafka_sh, "up")
            await asyncio.to_thread(kafka_sh, "wait")
        outage = time.monotonic() - t_down
        await loader
    finally:
        if not loader.done():
            loader.cancel()
        await load.http.aclose()
    alive = {name: p.popen is not None and p.popen.poll() is None for name, p in stack.procs.items()}
    record(outage_s=round(outage, 1), accepted=len(load.accepted), uncertain_posts=load.uncertain,
           rejected=dict(load.rejected), services_alive_after=alive)
    assert all(alive.values()), f"services died during the outage: {alive}"
    figures = await verify_everything(dsn=infra, bootstrap=kafka.bootstrap_servers, topic=topics.session_events,
                                      sim=sim, load=load)
    record(total_s=round(time.monotonic() - t0, 1), **figures)
