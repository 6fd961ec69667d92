"""e2e helpers: link a session through the simulator and wait for it to be connected."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Stack, Tenant
from tests.support.clients import WsCollector, eventually


def new_phone() -> str:
    return "519" + "".join(random.choices("0123456789", k=8))


async def link_session(stack: Stack, tenant: Tenant, ws: WsCollector, phone: str | None = None) -> tuple[str, str]:
    """POST /sessions, wait for the QR on the WebSocket, scan it in the simulator; return (sessionId, phone)."""
    phone = phone or new_phone()
    r = await tenant.http.post("/sessions", json={})
    assert r.status_code == 202, r.text
    sid = r.json()["sessionId"]
    await ws.wait_for(lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == sid)
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        # During a rebalance the device is briefly between owners (the simulator answers 409): retry.
        for _ in range(40):
            scan = await sim.post("/control/scan", json={"sessionId": sid, "phone": phone})
            if scan.status_code != 409:
                break
            await asyncio.sleep(0.25)
        assert scan.status_code == 200, scan.text
    await ws.wait_for(lambda e: e["type"] == "session.status.connected" and e["sessionId"] == sid)

    async def projected() -> bool:
        r = await tenant.http.get(f"/sessions/{sid}")
        return r.status_code == 200 and r.json()["status"] == "connected"

    await eventually(projected)
    return sid, phone


@pytest.fixture
def ws_url(stack: Stack):  # type: ignore[no-untyped-def]
    def make(tenant: Tenant) -> str:
        return f"{stack.ws_url}/ws/sessions?accessToken={tenant.key}"

    return make


Event = dict[str, Any]


@dataclass
class Linked:
    stack: Stack
    tenant: Tenant
    ws: WsCollector
    sid: str
    phone: str
    sim: httpx.AsyncClient

    async def send(self, to: str, **body: Any) -> tuple[dict[str, Any], Event]:
        """POST /chats/{jid}/messages and wait for its upsert on the WebSocket."""
        r = await self.tenant.http.post(f"/chats/{to}/messages", json={"sessionId": self.sid, **body})
        assert r.status_code == 202, r.text
        accepted = r.json()
        upsert = await self.ws.wait_for(
            lambda e: e["type"] == "session.messages.upsert" and e["payload"].get("requestId") == accepted["commandId"]
        )
        return accepted, upsert

    async def outcome(self, command_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            r = await self.tenant.http.get(f"/commands/{command_id}")
            return r.json() if r.status_code == 200 else None

        result: dict[str, Any] = await eventually(done)
        return result

    async def messages(self, jid: str, **params: Any) -> dict[str, Any]:
        r = await self.tenant.http.get(f"/chats/{jid}/messages", params={"sessionId": self.sid, **params})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def message(self, jid: str, message_id: str) -> dict[str, Any]:
        found = [m for m in (await self.messages(jid, limit=200))["messages"] if m["id"] == message_id]
        return found[0] if found else {}

    async def quiet_contact(self, phone: str) -> None:
        r = await self.sim.post(f"/control/contacts/{phone}", json={"autoReply": False, "autoRead": False})
        assert r.status_code == 200, r.text


@pytest.fixture
async def linked(stack: Stack, tenant: Tenant, ws_url) -> AsyncIterator[Linked]:  # type: ignore[no-untyped-def]
    async with WsCollector(ws_url(tenant)) as ws, httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        sid, phone = await link_session(stack, tenant, ws)
        yield Linked(stack, tenant, ws, sid, phone, sim)
