"""Session failover: partitions (and so sessions) move between runners by themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import Stack, Tenant, runner_proc
from tests.e2e.conftest import Linked, link_session, new_phone
from tests.support.clients import WsCollector, eventually
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import partition_for

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


async def _connections(sim: httpx.AsyncClient, sids: list[str]) -> dict[str, int]:
    devices = (await sim.get("/control/devices")).json()["devices"]
    return {d["sessionId"]: d["connections"] for d in devices if d["sessionId"] in sids}


async def test_rebalances_move_only_the_sessions_that_change_owner(
    stack: Stack, tenant: Tenant, ws_url, kafka: KafkaSettings, run_id: str  # type: ignore[no-untyped-def]
) -> None:
    """A joining runner takes whole partitions; sessions of the others keep their connections.

    Moved sessions say so: ``disconnected`` with reason ``owner_lost``, then ``connected``.
    """
    async with WsCollector(ws_url(tenant)) as ws, httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        sids: list[str] = []
        # At least one session in every partition, whichever one the joiner gets.
        while len(sids) < SESSIONS or len({partition_for(s, kafka.partitions) for s in sids}) < kafka.partitions:
            sids.append((await link_session(stack, tenant, ws))[0])
        before = await _connections(sim, sids)
        mark = len(ws.events)
        second = runner_proc("runner-joins", kafka, stack.sim_url, run_id)
        second.start()
        try:
            async def moved() -> dict[str, int]:
                now = await _connections(sim, sids)
                changed = {sid: now[sid] - before[sid] for sid in sids if now[sid] != before[sid]}
                return changed

            changed = await eventually(moved, timeout=60)
            await asyncio.sleep(3)  # let a rebalance finish moving whatever it moves
            changed = await moved()
            moved_parts = {partition_for(sid, kafka.partitions) for sid in changed}
            kept = [sid for sid in sids if partition_for(sid, kafka.partitions) not in moved_parts]
            # Whole partitions moved, each of their sessions reconnected once; the rest were not touched.
            assert all(partition_for(sid, kafka.partitions) in moved_parts for sid in changed)
            assert all(n == 1 for n in changed.values()), changed
            assert kept, "the first runner kept nothing"
            assert all(sid not in changed for sid in kept)
            for sid in changed:
                down = await ws.wait_for(lambda e, sid=sid: e["sessionId"] == sid
                                         and e["type"] == "session.status.disconnected"
                                         and e["payload"]["reason"] == "owner_lost")
                assert down in ws.events[mark:]
                await ws.wait_for(lambda e, sid=sid, down=down: e["sessionId"] == sid
                                  and e["type"] == "session.status.connected"
                                  and ws.events.index(e) > ws.events.index(down))
            recent = ws.events[mark:]
            assert not [e for e in recent if e["sessionId"] in kept and e["type"].startswith("session.status.")]

            # The joiner is SIGKILLed: its sessions come back to the first runner and say so;
            # the first runner's own sessions are not touched.
            base = await _connections(sim, sids)
            mark = len(ws.events)
            second.kill()

            async def back() -> bool:
                now = await _connections(sim, sids)
                return all(now[sid] == base[sid] + 1 for sid in changed)

            await eventually(back, timeout=60)
            now = await _connections(sim, sids)
            assert all(now[sid] == base[sid] for sid in kept)
            contact = new_phone()
            await sim.post(f"/control/contacts/{contact}", json={"autoReply": False})
            sent = await _send_everywhere(tenant, sids, contact, "after the joiner died")
            await eventually(lambda: _all_received(sim, contact, sent), timeout=60, interval=0.5)
            recent = ws.events[mark:]
            assert not [e for e in recent if e["type"] == "session.command.failed"]
            for sid in changed:
                assert any(e["sessionId"] == sid and e["type"] == "session.status.disconnected"
                           and e["payload"]["reason"] == "owner_lost" for e in recent)
        finally:
            second.stop()


async def test_a_send_while_the_link_is_down_is_held_then_delivered(linked: Linked) -> None:
    """Held, not failed: the send waits for the reconnect instead of failing."""
    contact = new_phone()
    await linked.quiet_contact(contact)
    r = await linked.sim.post(f"/control/devices/{linked.sid}/drop", json={})
    assert r.status_code == 200, r.text
    r = await linked.tenant.http.post(f"/sessions/{linked.sid}/messages", json={"to": contact, "content": "held"})
    assert r.status_code == 202, r.text
    outcome = await linked.outcome(r.json()["commandId"])
    assert outcome["status"] == "succeeded", outcome
    inbox = (await linked.sim.get(f"/control/accounts/{contact}/inbox")).json()["messages"]
    assert [m["text"] for m in inbox] == ["held"]


async def test_a_session_whose_runner_died_unreplaced_shows_unknown(linked: Linked) -> None:
    """With no runner left, the API stops claiming "connected" once the group notices the death."""
    runner = linked.stack.runner()

    async def status() -> str:
        r = await linked.tenant.http.get(f"/sessions/{linked.sid}")
        return str(r.json()["status"])

    assert await status() == "connected"
    runner.kill()
    try:
        await eventually(lambda: _is(status, "unknown"), timeout=30)
    finally:
        runner.start()
    await eventually(lambda: _is(status, "connected"), timeout=60)
    # The new owner said what happened: disconnected (owner_lost), then connected.
    await linked.ws.wait_for(lambda e: e["sessionId"] == linked.sid and e["type"] == "session.status.disconnected"
                             and e["payload"]["reason"] == "owner_lost")


async def _is(read: Callable[[], Awaitable[str]], want: str) -> bool:
    return await read() == want
