"""Session failover: partitions (and so sessions) move between runners by themselves."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Stack, Tenant, runner_proc
from tests.e2e.conftest import link_session, new_phone
from tests.support.clients import WsCollector, eventually
from zapstream_platform.settings import KafkaSettings

SESSIONS = 6


async def _send_everywhere(tenant: Tenant, sids: list[str], contact: str, text: str) -> set[str]:
    ids = set()
    for sid in sids:
        r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": contact, "content": text})
        assert r.status_code == 202, r.text
        ids.add(r.json()["messageId"])
    return ids


async def _all_received(sim: httpx.AsyncClient, contact: str, ids: set[str]) -> bool:
    inbox = (await sim.get(f"/control/accounts/{contact}/inbox")).json()["messages"]
    return ids <= {m["id"] for m in inbox}


async def test_killed_runner_hands_its_sessions_to_the_survivor(
    stack: Stack, tenant: Tenant, ws_url, kafka: KafkaSettings, run_id: str  # type: ignore[no-untyped-def]
) -> None:
    second = runner_proc("runner-2", kafka, stack.sim_url, run_id)
    second.start()
    try:
        async with WsCollector(ws_url(tenant)) as ws:
            sids = [(await link_session(stack, tenant, ws))[0] for _ in range(SESSIONS)]
        contact = new_phone()
        async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
            await sim.post(f"/control/contacts/{contact}", json={"autoReply": False})
            before = await _send_everywhere(tenant, sids, contact, "before")
            await eventually(lambda: _all_received(sim, contact, before), timeout=60)

            # SIGKILL: no goodbye. The group notices after the session timeout and
            # moves every partition to runner-2, which rebuilds and reconnects.
            stack.runner().kill()
            after = await _send_everywhere(tenant, sids, contact, "after kill")
            await eventually(lambda: _all_received(sim, contact, after), timeout=90, interval=0.5)

            # Graceful hand-back: the restarted runner joins; runner-2 leaves cleanly.
            stack.runner().start()
            await asyncio.sleep(2)
            second.stop()
            assert second.popen is not None and second.popen.returncode == 0, second.tail()
            assert "Traceback" not in second.log_path.read_text()
            back = await _send_everywhere(tenant, sids, contact, "after handover")
            await eventually(lambda: _all_received(sim, contact, back), timeout=90, interval=0.5)

            inbox = (await sim.get(f"/control/accounts/{contact}/inbox")).json()["messages"]
            assert all(m["count"] == 1 for m in inbox)
            assert len(inbox) == 3 * SESSIONS
    finally:
        second.stop()
        if stack.runner().popen is None or stack.runner().popen.poll() is not None:
            stack.runner().start()
