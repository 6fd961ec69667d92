"""Failover nobody notices: two runners, 200 linked sessions, one runner SIGKILLed under load.

10 msg/s go to the victim's sessions before, during and after the kill. Afterwards:
every accepted message reached WhatsApp exactly once and none failed (sends are held
while their session changes owner); the healthy runner's sessions kept their
connections; the moved sessions said so on the event topic (``disconnected`` with
reason ``owner_lost``, then ``connected``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.conftest import Stack, Tenant, runner_proc
from tests.e2e.conftest import link_session
from tests.faults.support import Load, new_phone, read_records, verify_everything, wait_until
from tests.support.clients import WsCollector
from tests.support.runner_logs import owned_partitions
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, partition_for

SESSIONS = 200
RATE = 10.0
TOTAL = 400  # 40 s of load; the kill lands 12 s in


async def devices(sim: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {d["sessionId"]: d for d in (await sim.get("/control/devices")).json()["devices"]}


async def test_sigkilled_runner_hands_over_without_failed_sends(
    stack: Stack, tenant: Tenant, sim: httpx.AsyncClient, infra: str, kafka: KafkaSettings,  # type: ignore[no-untyped-def]
    topics: Topics, run_id: str, record,  # type: ignore[no-untyped-def]
) -> None:
    victim = runner_proc("runner-victim", kafka, stack.sim_url, run_id)
    victim.start()
    try:
        async def joined() -> bool:
            return "partition assigned" in victim.log_path.read_text(errors="replace")

        await wait_until(joined, 60, what="the victim joined the group")
        url = f"{stack.ws_url}/ws/sessions?accessToken={tenant.key}"
        async with WsCollector(url) as ws:
            sem = asyncio.Semaphore(16)

            async def link() -> str:
                async with sem:
                    return (await link_session(stack, tenant, ws))[0]

            sids = list(await asyncio.gather(*(link() for _ in range(SESSIONS))))

        def mine() -> set[int]:
            return owned_partitions(victim.log_path.read_text(errors="replace"))

        async def owns() -> set[int]:
            return mine()

        await wait_until(owns, 60, what="the victim owns partitions")
        victims = [sid for sid in sids if partition_for(sid, kafka.partitions) in mine()]
        healthy = [sid for sid in sids if sid not in victims]
        assert victims and healthy, f"victim owns {mine()}"
        contact = new_phone()
        (await sim.post(f"/control/contacts/{contact}", json={"autoReply": False, "autoRead": False})).raise_for_status()
        http = httpx.AsyncClient(base_url=stack.api_url, headers=dict(tenant.http.headers), timeout=90)
        load = Load(http, victims, contact)
        before = await devices(sim)
        loader = asyncio.create_task(load.run(TOTAL, RATE))
        try:
            await asyncio.sleep(TOTAL / RATE * 0.3)
            killed_at = time.time()
            victim.kill()

            async def all_back() -> float | None:
                now = await devices(sim)
                if all(now[sid]["connected"] and now[sid]["attachedAtMs"] / 1000 > killed_at for sid in victims):
                    return max(now[sid]["attachedAtMs"] for sid in victims) / 1000 - killed_at
                return None

            last_back_s = await wait_until(all_back, 60, interval=0.1, what="every moved session reconnected")
            await loader
        finally:
            if not loader.done():
                loader.cancel()
            await http.aclose()
        after = await devices(sim)
        needless = [sid for sid in healthy if after[sid]["connections"] != before[sid]["connections"]]
        figures = await verify_everything(dsn=infra, bootstrap=kafka.bootstrap_servers, topic=topics.session_events,
                                          sim=sim, load=load)
        records = await read_records(kafka.bootstrap_servers, topics.session_events)
        outage = {r.env.session_id for r in records if r.env.type == "session.status.disconnected"
                  and r.env.payload.get("reason") == "owner_lost" and r.env.occurred_at().timestamp() >= killed_at}
        record(sessions=SESSIONS, victim_sessions=len(victims), healthy_sessions=len(healthy),
               accepted=len(load.accepted), uncertain_posts=load.uncertain, rejected=dict(load.rejected),
               last_session_back_after_kill_s=round(last_back_s, 2),
               healthy_sessions_reconnected=len(needless), moved_sessions_reporting_owner_lost=len(outage),
               **figures)
        assert len(load.accepted) == TOTAL, f"posts not accepted: {load.uncertain} uncertain, {dict(load.rejected)}"
        assert figures["topic"]["failed_sends"] == 0
        assert not needless, f"{len(needless)} healthy sessions reconnected"
        assert set(victims) <= outage, f"{len(set(victims) - outage)} moved sessions reported no owner_lost"
    finally:
        victim.kill()
