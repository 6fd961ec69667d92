"""Seed 002's linking socket, as its admin front end uses it: a plain WebSocket client, ``{event, data}`` frames.

Open ``/ws/session/<name>`` → the session is created → ``initializing``, ``qr`` → the phone scans →
``connected`` and the server closes; opening it again answers ``already_connected`` and closes.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import new_phone
from tests.support.clients import eventually


async def frames_until_closed(conn: ClientConnection, on_frame: Any = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        async for raw in conn:
            out.append(orjson.loads(raw))
            if on_frame is not None:
                await on_frame(out[-1])
    except ConnectionClosed:
        pass
    return out


async def session_id_of(tenant: Tenant, name: str) -> str:
    async def find() -> str | None:
        r = await tenant.http.get("/sessions")
        found = [s["id"] for s in r.json()["sessions"] if s["name"] == name]
        return found[0] if found else None

    sid: str = await eventually(find)
    return sid


@pytest.mark.parametrize("via", ["gateway", "api"])
async def test_seed002_socket_creates_links_and_closes(stack: Stack, tenant: Tenant, via: str) -> None:
    name = f"tienda_{uuid.uuid4().hex[:6]}"
    base = stack.ws_url if via == "gateway" else stack.api_url.replace("http://", "ws://")
    phone = new_phone()

    async def scan(frame: dict[str, Any]) -> None:
        if frame["event"] == "qr":
            sid = await session_id_of(tenant, name)
            async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
                r = await sim.post("/control/scan", json={"sessionId": sid, "phone": phone})
                assert r.status_code == 200, r.text

    # Seed 002's clients send their static token as a bearer header.
    async with connect(f"{base}/ws/session/{name}", open_timeout=10,
                       additional_headers={"Authorization": f"Bearer {tenant.key}"}) as conn:
        frames = await asyncio.wait_for(frames_until_closed(conn, scan), 60)
        assert conn.close_code == 1000
    assert frames[0] == {"event": "status", "data": "initializing"}
    qrs = [f for f in frames if f["event"] == "qr"]
    assert qrs and isinstance(qrs[0]["data"], str) and qrs[0]["data"]
    assert frames[-1] == {"event": "status", "data": "connected"}
    assert all(set(f) == {"event", "data"} for f in frames)

    # The session is the tenant's, with the seed's name; send-pdf addresses it by that name.
    sid = await session_id_of(tenant, name)

    async def connected() -> bool:
        return (await tenant.http.get(f"/sessions/{sid}")).json()["status"] == "connected"

    await eventually(connected)
    async with connect(f"{base}/ws/session/{name}?accessToken={tenant.key}", open_timeout=10) as conn:
        again = await asyncio.wait_for(frames_until_closed(conn), 20)
        assert conn.close_code == 1000
    assert again == [{"event": "status", "data": "already_connected"}]
    r = await tenant.http.post("/api/send-pdf", json={"sessionId": name, "to": new_phone(),
                                                      "pdfBase64": "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"})
    assert r.status_code == 202, r.text


async def test_seed002_socket_refuses_bad_tokens_and_other_tenants(stack: Stack, tenant_factory: Any) -> None:
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    with pytest.raises(InvalidStatus):
        async with connect(f"{stack.ws_url}/ws/session/x?accessToken=zs_live_wrong", open_timeout=10):
            pass
    with pytest.raises(InvalidStatus):
        async with connect(f"{stack.api_url.replace('http://', 'ws://')}/ws/session/x", open_timeout=10):
            pass
    # A's session id, opened by B: not B's, so B gets a new session of its own by that name, never A's.
    r = await a.http.post("/sessions", json={})
    sid_a = r.json()["sessionId"]
    async with connect(f"{stack.ws_url}/ws/session/{sid_a}?accessToken={b.key}", open_timeout=10) as conn:
        first = orjson.loads(await asyncio.wait_for(conn.recv(), 20))
        assert first == {"event": "status", "data": "initializing"}
    sessions_b = (await b.http.get("/sessions")).json()["sessions"]
    assert sid_a not in [s["id"] for s in sessions_b]
