"""Pytest plugin: the WhatsApp simulator as a real subprocess, plus a client for its control API.

Register with ``pytest_plugins = ["tests.integration.conftest_sim"]`` (or ``-p``).
Fixtures: ``simulator_url`` (session), ``sim_control`` (session).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

# What `from tests.integration.conftest_sim import *` hands to a conftest: the fixtures only.
__all__ = ["sim_control", "simulator_url"]

# Short contact delays keep the suite fast; warnings only, so the log stays readable.
SIMULATOR_TEST_ENV = {
    "SIM_HOST": "127.0.0.1",
    "SIM_LOG_LEVEL": "warning",
    "SIM_CONTACT_READ_DELAY_MS": "10",
    "SIM_CONTACT_REPLY_DELAY_MS": "30",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_session_id(prefix: str = "sim-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_phone() -> str:
    """A random 12-digit E.164 number, so tests never share accounts or contacts."""
    return "77" + f"{secrets.randbelow(10**10):010d}"


def jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_simulator(
    port: int, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Spawn ``python -m wa_simulator`` on ``port``; the caller must stop it."""
    with pytest.MonkeyPatch.context() as mp, log_path.open("wb") as log_file:
        # The child inherits the environment at spawn time; the patch is undone right after.
        for key, value in {**SIMULATOR_TEST_ENV, **(extra_env or {}), "SIM_PORT": str(port)}.items():
            mp.setenv(key, value)
        return subprocess.Popen(
            [sys.executable, "-m", "wa_simulator"], stdout=log_file, stderr=subprocess.STDOUT
        )


def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                if client.get(f"{url}/control/stats").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"simulator not ready at {url} after {timeout}s:\n{_tail(log_path)}")


def stop_simulator(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@pytest.fixture(scope="session")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>``) of a simulator process shared by the test session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("simulator") / "simulator.log"
    proc = start_simulator(port, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log_path)
        yield url
    finally:
        stop_simulator(proc)


class SimControl:
    """Async client for the simulator's ``/control`` endpoints; failures raise ``AssertionError``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10.0, trust_env=False)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200
    ) -> dict[str, Any]:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if body is not None else None
        response = await self.http.request(method, path, content=content, headers=headers)
        assert response.status_code == expect, f"{method} {path} -> {response.status_code}: {response.text}"
        data: dict[str, Any] = orjson.loads(response.content)
        return data

    async def scan(
        self, phone: str, *, session_id: str | None = None, qr: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"phone": phone}
        if session_id is not None:
            body["sessionId"] = session_id
        if qr is not None:
            body["qr"] = qr
        return await self.call("POST", "/control/scan", body)

    async def pair(self, code: str) -> dict[str, Any]:
        return await self.call("POST", "/control/pair", {"code": code})

    async def device(self, session_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/control/devices/{session_id}")

    async def drop(self, session_id: str) -> None:
        await self.call("POST", f"/control/devices/{session_id}/drop", {})

    async def logout(self, session_id: str) -> None:
        await self.call("POST", f"/control/devices/{session_id}/logout", {})

    async def latency(self, ms: int) -> None:
        await self.call("POST", "/control/latency", {"ms": ms})

    async def inject(
        self,
        sender: str,
        to: str,
        text: str | None,
        *,
        msg_id: str | None = None,
        reply_to: str | None = None,
        forwarded: bool = False,
        media: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``sender``'s phone writes to ``to``; ``media`` is ``{dataBase64, kind, mime, fileName?, ...}``."""
        body: dict[str, Any] = {"from": sender, "to": to, "text": text, "forwarded": forwarded}
        if msg_id is not None:
            body["id"] = msg_id
        if reply_to is not None:
            body["replyTo"] = reply_to
        if media is not None:
            body["media"] = media
        return await self.call("POST", "/control/inject", body)

    async def contact(
        self,
        phone: str,
        *,
        auto_reply: bool | None = None,
        auto_read: bool | None = None,
        typing: bool | None = None,
        name: str | None = None,
        saved_name: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "autoReply": auto_reply,
            "autoRead": auto_read,
            "typing": typing,
            "name": name,
            "savedName": saved_name,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return await self.call("POST", f"/control/contacts/{phone}", body)

    async def contact_view(self, phone: str) -> dict[str, Any]:
        return await self.call("GET", f"/control/contacts/{phone}")

    async def contact_react(self, phone: str, to: str, msg_id: str, emoji: str) -> dict[str, Any]:
        body = {"to": to, "messageId": msg_id, "emoji": emoji}
        return await self.call("POST", f"/control/contacts/{phone}/react", body)

    async def contact_edit(self, phone: str, to: str, msg_id: str, text: str) -> dict[str, Any]:
        body = {"to": to, "messageId": msg_id, "text": text}
        return await self.call("POST", f"/control/contacts/{phone}/edit", body)

    async def contact_revoke(self, phone: str, to: str, msg_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/control/contacts/{phone}/revoke", {"to": to, "messageId": msg_id})

    async def contact_presence(self, phone: str, presence: str, to: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"presence": presence}
        if to is not None:
            body["to"] = to
        return await self.call("POST", f"/control/contacts/{phone}/presence", body)

    async def clear_chat(self, session_id: str, chat: str) -> dict[str, Any]:
        return await self.call("POST", f"/control/devices/{session_id}/clear-chat", {"chat": chat})

    async def inbox(self, phone: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = (await self.call("GET", f"/control/accounts/{phone}/inbox"))[
            "messages"
        ]
        return messages

    async def outbox(self, phone: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = (await self.call("GET", f"/control/accounts/{phone}/outbox"))[
            "messages"
        ]
        return messages

    async def stats(self) -> dict[str, Any]:
        return await self.call("GET", "/control/stats")

    async def reset(self) -> None:
        await self.call("POST", "/control/reset")


@pytest.fixture(scope="session")
async def sim_control(simulator_url: str) -> AsyncIterator[SimControl]:
    """A :class:`SimControl` bound to the session's simulator."""
    control = SimControl(simulator_url)
    try:
        yield control
    finally:
        await control.aclose()
