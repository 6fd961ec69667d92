"""Seed 002's linking socket: ``/ws/session/{sessionId}`` with ``{event, data}`` frames.

Its admin front end opens the socket to create or reconnect a session by name and show the QR:

* authenticated like ``/ws/sessions`` (``accessToken`` query parameter, or ``Authorization: Bearer``
  as seed 002's static token is sent); a refused token closes before the upgrade (4401);
* ``sessionId`` is a session id of the tenant or a name; a name not seen before creates the session
  (``session.create`` with that name, remembered in ``declared_sessions``); a stopped one is started;
* frames: ``{"event": "status", "data": "initializing" | "already_connected" | "connected" |
  "disconnected"}``, ``{"event": "qr", "data": "<QR string>"}``, ``{"event": "error", "data": "…"}``;
* the server closes the socket (1000) once the session is connected, or at once when it already was.

The frames come from the same hub as ``/ws/sessions`` (one tail of the event topic), through a
client scoped to this one session: no second pipeline.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from ws_gateway.hub import Client, Hub, decode
from ws_gateway.settings import Settings
from ws_gateway.streaming import frames
from zapstream_contracts import commands as c
from zapstream_contracts import events as ev
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope, command_headers
from zapstream_contracts.timefmt import iso
from zapstream_platform.readmodels import declare_session, session_by_name_or_id
from zapstream_platform.tokens import Principal, TokenSigner, resolve
from zapstream_platform.topics import Topics

SOURCE = "/zapstream/ws-gateway"

# Read-model statuses in which the runner is already linking or linked: no start needed.
LINKING = frozenset({"created", "qr_pending", "connecting", "connected"})
NAME_MAX = 200


def frame(event: str, data: Any) -> str:
    return orjson.dumps({"event": event, "data": data}).decode()


def translate(env: Envelope, commands: set[str]) -> tuple[str | None, bool]:
    """An event of the session → (seed 002 frame or None, close after it)."""
    try:
        return _translate(env, commands)
    except (ValidationError, TypeError):  # not the contract's payload: nothing seed 002 can show
        return None, False


def _translate(env: Envelope, commands: set[str]) -> tuple[str | None, bool]:
    type_ = env.type
    if type_ == ev.QR_UPDATED.type:
        secret = secrets.qr_of(env)  # frames come from the secrets topic's copy, which has the code
        return (frame("qr", secret.qr), False) if secret is not None else (None, False)
    if type_ == ev.STATUS_CONNECTED.type:
        return frame("status", "connected"), True
    if type_ in (ev.STATUS_DISCONNECTED.type, ev.STATUS_LOGGED_OUT.type):
        return frame("status", "disconnected"), False
    if type_ == ev.SESSION_DELETED.type:
        return frame("error", "session deleted"), True
    if type_ == ev.COMMAND_FAILED.type:
        failed = env.data(p.CommandFailed)
        if failed.command_id not in commands:
            return None, False
        if failed.code == "already_connected":
            return frame("status", "already_connected"), True
        return frame("error", failed.reason or failed.code or "command failed"), False
    return None, False


class Linker:
    """Creates and starts sessions for the seed 002 socket (the gateway's only writes to Kafka)."""

    def __init__(self, settings: Settings, hub: Hub, signer: TokenSigner) -> None:
        self.settings = settings
        self.hub = hub
        self.signer = signer
        self.topic = Topics.from_settings(settings.kafka).session_commands
        self.producer: AIOKafkaProducer | None = None
        self.pool: asyncpg.Pool | None = None

    async def start(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka.bootstrap_servers,
                                         enable_idempotence=True, acks="all")
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, cls: type[c.Command], who: Principal, sid: str, **fields: Any) -> str:
        assert self.producer is not None
        command = cls(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=who.tenant_id,
                      issued_at=iso(datetime.now(UTC)), **fields)
        await self.producer.send_and_wait(self.topic, value=command.model_dump_json(by_alias=True).encode(),
                                          key=sid.encode(), headers=command_headers(command, SOURCE))
        return command.command_id

    async def endpoint(self, websocket: WebSocket, session_id: str) -> None:
        pool = self.pool
        assert pool is not None
        token = websocket.query_params.get("accessToken", "")
        bearer = websocket.headers.get("authorization", "")
        if not token and bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
        who = await resolve(pool, self.signer, token) if token else None
        if who is None:
            await websocket.close(code=4401, reason="invalid access token")
            return
        await websocket.accept()
        try:
            await self._link(websocket, pool, who, session_id)
        except WebSocketDisconnect:
            pass

    async def _link(self, websocket: WebSocket, pool: asyncpg.Pool, who: Principal, name: str) -> None:
        async def fail(message: str, code: int = 1008) -> None:
            await websocket.send_text(frame("error", message))
            await websocket.close(code=code, reason=message)

        if who.is_agent:
            return await fail("agents cannot link sessions", 4403)
        if not name or len(name) > NAME_MAX:
            return await fail("invalid sessionId")
        found = await session_by_name_or_id(pool, who.tenant_id, name)
        if found is not None and found[2]:
            return await fail("session deleted")
        if found is None:
            if who.session_ids is not None:
                return await fail("this API key cannot create sessions", 4403)
            sid, _, _ = await declare_session(pool, who.tenant_id, name)
            view = None
        else:
            sid, row, _ = found
            view = None if row is None else p.SessionView.model_validate(row)
        if who.session_ids is not None and sid not in who.session_ids:
            return await fail("session not in this API key's scope", 4403)
        if view is not None and view.status == "connected":
            await websocket.send_text(frame("status", "already_connected"))
            await websocket.close(code=1000)
            return
        # Registered before the command is sent, so no event of this session falls in between.
        client = Client(who.tenant_id, self.settings.client_queue, sessions=frozenset({sid}))
        self.hub.add(client)
        try:
            await websocket.send_text(frame("status", "initializing"))
            commands: set[str] = set()
            if found is None:
                commands.add(await self.send(c.CreateSession, who, sid, name=name))
            elif view is None:
                pass  # registered but not projected yet: its create is on its way
            elif view.status not in LINKING:
                commands.add(await self.send(c.StartSession, who, sid))
            elif view.qr:
                await websocket.send_text(frame("qr", view.qr))
            await _stream(websocket, client, commands)
        finally:
            self.hub.remove(client)


async def _stream(websocket: WebSocket, client: Client, commands: set[str]) -> None:
    async with contextlib.aclosing(frames(websocket, client, revocable=False)) as stream:
        async for frame in stream:
            env = decode(frame)
            if env is None:
                continue
            text, close = translate(env, commands)
            if text is not None:
                await websocket.send_text(text)
            if close:
                with contextlib.suppress(RuntimeError):
                    await websocket.close(code=1000)
                return
