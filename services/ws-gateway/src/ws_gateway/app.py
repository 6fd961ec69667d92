"""The WebSocket endpoint: authenticate, send the snapshot, then stream the tenant's events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ws_gateway.hub import Client, Hub, pump
from ws_gateway.settings import Settings
from zapstream_platform import apikeys
from zapstream_platform.db import create_pool
from zapstream_platform.envelope import snapshot
from zapstream_platform.http import JsonResponse
from zapstream_platform.readmodels import latest_session
from zapstream_platform.topics import Topics


def create_app(settings: Settings) -> FastAPI:
    hub = Hub()
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await create_pool(settings.postgres)
        stopping = asyncio.Event()
        task = asyncio.create_task(
            pump(hub, settings.kafka.bootstrap_servers, Topics.from_settings(settings.kafka).session_events, stopping)
        )
        try:
            yield
        finally:
            stopping.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await state["pool"].close()

    app = FastAPI(title="zapstream ws-gateway", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> JsonResponse:
        ready = hub.ready.is_set()
        return JsonResponse({"status": "ok" if ready else "starting", "clients": sum(map(len, hub.clients.values()))},
                              status_code=200 if ready else 503)

    @app.websocket("/ws/sessions")
    async def sessions(websocket: WebSocket) -> None:
        pool = state["pool"]
        token = websocket.query_params.get("accessToken", "")
        tenant_id = await apikeys.tenant_for(pool, token) if token else None
        if tenant_id is None:
            await websocket.close(code=4401, reason="invalid access token")
            return
        await websocket.accept()
        client = Client(tenant_id, settings.client_queue)
        # Register before reading the snapshot so nothing falls between the two.
        hub.add(client)
        try:
            session = await latest_session(pool, tenant_id)
            env = snapshot(session["id"] if session else None, tenant_id, session, datetime.now(UTC))
            await websocket.send_text(env.value().decode())
            await _stream(websocket, client)
        except WebSocketDisconnect:
            pass
        finally:
            hub.remove(client)

    return app


async def _stream(websocket: WebSocket, client: Client) -> None:
    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    reader = asyncio.create_task(receive())
    overflow = asyncio.create_task(client.overflowed.wait())
    try:
        while True:
            getter = asyncio.create_task(client.queue.get())
            done, _ = await asyncio.wait({getter, reader, overflow}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if overflow in done:
                    await websocket.close(code=1013, reason="client too slow")
                return
            await websocket.send_text(getter.result().decode())
    finally:
        reader.cancel()
        overflow.cancel()
