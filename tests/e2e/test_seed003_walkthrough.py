"""Seed 003's walkthrough as its clients run it: REST under ``/api`` and Socket.IO (``python-socketio``'s client).

Two admins register and log in, each listens on Socket.IO with its token, ``POST /api/whatsapp/init``
shows each its own QR (a PNG data URL), A links, lists chats, creates a station, grants it a chat;
the station sees only that chat; B sees none of A's data.

The e-mail verification between register and login is test_auth's subject (it runs the SMTP server);
here the address is marked verified in the database, as an operator could.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import socketio

from tests.conftest import Stack
from tests.e2e.conftest import new_phone
from tests.support.clients import eventually

PASSWORD = "SuperSecure123!"


@dataclass
class Listener:
    client: socketio.AsyncClient
    events: list[tuple[str, Any]] = field(default_factory=list)

    def of(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]


async def listen(stack: Stack, token: str) -> Listener:
    client = socketio.AsyncClient(reconnection=False)
    listener = Listener(client)
    client.on("qr", lambda data: listener.events.append(("qr", data)))
    client.on("session_status", lambda data: listener.events.append(("session_status", data)))
    await client.connect(stack.api_url, auth={"token": token}, wait_timeout=10)
    return listener


async def admin(stack: Stack, pg: asyncpg.Pool, http: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    address = f"admin-{uuid.uuid4().hex[:10]}@example.com"
    headers = {"X-Forwarded-For": f"10.3.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"}
    r = await http.post("/api/auth/register", json={"name": "Admin", "email": address, "password": PASSWORD},
                        headers=headers)
    assert r.status_code == 202 and r.json()["success"] is True, r.text
    await pg.execute("UPDATE users SET email_verified_at = now() WHERE lower(email) = lower($1)", address)
    r = await http.post("/api/auth/login", json={"email": address, "password": PASSWORD}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["data"]["accessToken"]
    return body["data"]["accessToken"], body["data"]["user"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_seed003_walkthrough_with_socketio(stack: Stack, pg: asyncpg.Pool) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as http:
        token_a, user_a = await admin(stack, pg, http)
        token_b, _ = await admin(stack, pg, http)
        a, b = await listen(stack, token_a), await listen(stack, token_b)
        try:
            # A bad token is refused at connect.
            with pytest.raises(socketio.exceptions.ConnectionError):
                await listen(stack, "not-a-token")

            r = await http.post("/api/whatsapp/init", headers=bearer(token_a))
            assert r.status_code == 202, r.text
            sid_a = r.json()["data"]["sessionId"]
            await eventually(lambda: _true(a.of("qr")))
            assert a.of("qr")[0].startswith("data:image/png;base64,")

            r = await http.post("/api/whatsapp/init", headers=bearer(token_b))
            assert r.status_code == 202, r.text
            sid_b = r.json()["data"]["sessionId"]
            assert sid_b != sid_a
            await eventually(lambda: _true(b.of("qr")))
            # Each tenant got only its own QR codes.
            assert not set(a.of("qr")) & set(b.of("qr"))
            assert {s["sessionId"] for s in a.of("session_status")} <= {sid_a}
            assert {s["sessionId"] for s in b.of("session_status")} <= {sid_b}

            # A's phone scans: session_status connected, on A's socket only.
            async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
                scan = await sim.post("/control/scan", json={"sessionId": sid_a, "phone": new_phone()})
                assert scan.status_code == 200, scan.text
            await eventually(lambda: _true([s for s in a.of("session_status") if s["status"] == "connected"]))
            assert not [s for s in b.of("session_status") if s["status"] == "connected"]

            async def linked() -> bool:
                r = await http.post("/api/whatsapp/init", headers=bearer(token_a))
                return r.status_code == 202 and r.json()["data"]["status"] == "connected"

            await eventually(linked)

            # A writes to a customer; the chat appears in GET /api/chats.
            customer = new_phone()
            r = await http.post(f"/api/chats/{customer}/messages", json={"message": "Hola"}, headers=bearer(token_a))
            assert r.status_code == 202 and r.json()["success"] is True, r.text
            chat = f"{customer}@s.whatsapp.net"

            async def chat_listed() -> list[dict[str, Any]] | None:
                r = await http.get("/api/chats", headers=bearer(token_a))
                assert r.status_code == 200 and r.json()["success"] is True, r.text
                chats = r.json()["data"]["chats"]
                return chats if any(c["jid"] == chat for c in chats) else None

            await eventually(chat_listed)
            r = await http.get(f"/api/chats/{customer}@c.us/messages", headers=bearer(token_a))
            assert r.status_code == 200 and "Hola" in [m["text"] for m in r.json()["data"]["messages"]]

            # A station (an employee) with one chat.
            station = f"station-{uuid.uuid4().hex[:8]}@example.com"
            r = await http.post("/api/auth/create-station",
                                json={"name": "Caja 1", "email": station, "password": PASSWORD},
                                headers=bearer(token_a))
            assert r.status_code == 202 and r.json()["success"] is True, r.text
            r = await http.get("/api/auth/employees", headers=bearer(token_a))
            employee = next(e for e in r.json()["data"]["employees"] if e["email"] == station)
            r = await http.post("/api/permissions/assign", json={"employeeId": employee["id"], "chatId": chat},
                                headers=bearer(token_a))
            assert r.status_code == 201 and r.json()["data"] == {"employeeId": employee["id"], "chatId": chat}
            r = await http.post("/api/auth/login", json={"email": station, "password": PASSWORD})
            token_s = r.json()["data"]["accessToken"]
            r = await http.get("/api/chats", headers=bearer(token_s))
            assert [c["jid"] for c in r.json()["data"]["chats"]] == [chat]
            other = new_phone()
            r = await http.get(f"/api/chats/{other}/messages", headers=bearer(token_s))
            assert r.status_code == 403 and r.json()["success"] is False and r.json()["error"]
            assert r.headers["content-type"].startswith("application/problem+json")
            r = await http.post("/api/whatsapp/init", headers=bearer(token_s))
            assert r.status_code == 403

            # Isolation: B sees none of A's chats, employees or messages, and cannot grant A's chat.
            r = await http.get("/api/chats", headers=bearer(token_b))
            assert r.json()["data"]["chats"] == []
            r = await http.get(f"/api/chats/{chat}/messages", headers=bearer(token_b))
            assert r.json()["data"]["messages"] == []
            r = await http.get("/api/auth/employees", headers=bearer(token_b))
            assert station not in [e["email"] for e in r.json()["data"]["employees"]]
            r = await http.post("/api/permissions/assign", json={"employeeId": employee["id"], "chatId": chat},
                                headers=bearer(token_b))
            assert r.status_code == 404 and r.json()["success"] is False
            r = await http.get("/api/media/3EB0NOPE", headers=bearer(token_a))
            assert r.status_code == 404 and r.json()["success"] is False
            r = await http.get(f"/api/media/profile-photo/{customer}", headers=bearer(token_a))
            assert r.status_code == 200 and r.json()["data"]["url"], r.text
            assert user_a["role"] == "owner"
            r = await http.post("/api/chats/x/messages", json={}, headers=bearer(token_a))
            assert r.status_code == 422 and r.json()["success"] is False
        finally:
            await a.client.disconnect()
            await b.client.disconnect()
            await asyncio.sleep(0)


async def _true(value: Any) -> bool:
    return bool(value)
