"""Seed 003's Socket.IO at the API origin: ``io(origin, {auth: {token}})`` receives ``qr`` and ``session_status``.

Each Socket.IO connection is one subscriber of the WebSocket gateway's ``/ws/sessions`` stream (the hub
that tails the event topic), opened with the client's token: the gateway authenticates it, scopes it
to the tenant (and to an agent's chats or an API key's sessions) and adds ``qrImage``. This module only
renames frames into seed 003's events, so there is no second pipeline and no second tenancy check:

* ``qr``: the PNG data URL (``session.qr.updated``'s ``qrImage``; also on connect when a QR is showing);
* ``session_status``: ``{"status": "connected" | "disconnected" | "logged_out" | …, "sessionId", …}``,
  on connect (the session's current status) and on every status event.

Emitted to that connection only (``to=sid``): a tenant never receives another's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import quote

import socketio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from zapstream_contracts import events as ev
from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.websocket import QrShown, SnapshotShown

log = logging.getLogger(__name__)

SNAPSHOT = ev.SESSION_SNAPSHOT.type


def translate(frame: str | bytes) -> list[tuple[str, Any]]:
    """One gateway frame → seed 003's Socket.IO events (none for a frame that is not the contract's)."""
    try:
        env = Envelope.from_record(frame.encode() if isinstance(frame, str) else frame, ())
        return _translate(env)
    except (ValueError, KeyError, TypeError):  # ValidationError and orjson's decode error are ValueErrors
        return []


def _translate(env: Envelope) -> list[tuple[str, Any]]:
    sid = env.session_id
    if env.type == SNAPSHOT:
        session = env.data(SnapshotShown).session
        if session is None:
            return []
        out: list[tuple[str, Any]] = [("session_status", {"status": session.status, "sessionId": sid,
                                                          "phone": session.phone})]
        if session.qr_image:
            out.append(("qr", session.qr_image))
        return out
    if env.type == ev.QR_UPDATED.type:
        # The gateway's own addition to the payload, so read with the gateway's model of it.
        image = QrShown.model_validate(env.payload).qr_image
        return [("qr", image), ("session_status", {"status": "qr_pending", "sessionId": sid})] if image else []
    if env.type == ev.STATUS_CONNECTED.type:
        return [("session_status", {"status": "connected", "sessionId": sid,
                                    "phone": env.data(p.StatusConnected).phone})]
    if env.type == ev.STATUS_DISCONNECTED.type:
        return [("session_status", {"status": "disconnected", "sessionId": sid,
                                    "reason": env.data(p.StatusDisconnected).reason})]
    if env.type == ev.STATUS_LOGGED_OUT.type:
        return [("session_status", {"status": "logged_out", "sessionId": sid,
                                    "reason": env.data(p.StatusLoggedOut).reason})]
    return []


class Realtime:
    def __init__(self, gateway_url: str, cors_origins: list[str]) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.server = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=cors_origins or [],
                                           logger=False, engineio_logger=False)
        self.pumps: dict[str, asyncio.Task[None]] = {}
        self.server.on("connect", self.connect)
        self.server.on("disconnect", self.disconnect)

    def asgi(self) -> socketio.ASGIApp:
        return socketio.ASGIApp(self.server, socketio_path="socket.io")

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise socketio.exceptions.ConnectionRefusedError("authentication required")
        try:
            upstream = await connect(f"{self.gateway_url}/ws/sessions?accessToken={quote(token, safe='')}",
                                     open_timeout=10, max_size=None, ping_interval=None)
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise socketio.exceptions.ConnectionRefusedError("invalid token") from exc
        self.pumps[sid] = asyncio.create_task(self._pump(sid, upstream))

    async def disconnect(self, sid: str, *_: Any) -> None:
        task = self.pumps.pop(sid, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pump(self, sid: str, upstream: ClientConnection) -> None:
        try:
            async for frame in upstream:
                for name, data in translate(frame):
                    await self.server.emit(name, data, to=sid)
        except ConnectionClosed:
            pass
        finally:
            await upstream.close()
            if self.pumps.get(sid) is asyncio.current_task():
                # The gateway ended the stream (revoked credentials, too slow): end the client's too.
                self.pumps.pop(sid, None)
                with contextlib.suppress(Exception):
                    await self.server.disconnect(sid)
