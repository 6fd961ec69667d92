"""e2e helpers: link a session through the simulator and wait for it to be connected."""

from __future__ import annotations

import asyncio
import random

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
