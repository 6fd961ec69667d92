"""The WebSocket endpoint: authenticate, send the snapshot, then stream the tenant's events.

``accessToken`` is a user's access token (JWT) or a machine's API key. Agents
get only their assigned chats' events (see :mod:`ws_gateway.hub`); their
assignments are re-read every ``ws_auth.refresh_s`` seconds, and a socket whose
user was disabled, logged out everywhere, or whose API key was revoked is
closed with code 4401 at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.responses import Response

from ws_gateway.hub import CAMPAIGN_TYPES, Client, Hub, pump, qr_data_url
from ws_gateway.seed002 import Linker
from ws_gateway.settings import Settings
from ws_gateway.streaming import frames
from zapstream_contracts.envelope import snapshot
from zapstream_contracts.payloads import SessionView
from zapstream_platform.db import create_pool
from zapstream_platform.http import JsonResponse
from zapstream_platform.metrics import HttpMetricsMiddleware, Metrics, exposition
from zapstream_platform.pii import KeyRing
from zapstream_platform.readmodels import latest_session
from zapstream_platform.tokens import Principal, TokenSigner, assigned_chats, resolve
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


async def _snapshot_session(pool: asyncpg.Pool, who: Principal) -> dict[str, Any] | None:
    found = await latest_session(pool, who.tenant_id, who.session_ids)
    session = None if found is None else found[1]
    if session is None:
        return None
    if who.is_agent:
        return session | {"qr": None, "qrExpiresAt": None}
    qr = SessionView.model_validate(session).qr
    return session | {"qrImage": qr_data_url(qr) if qr else None}


def tenant_class(who: Principal) -> str:
    """The connection gauge's label: what kind of caller, never which tenant (bounded cardinality)."""
    if who.is_machine:
        return "apikey"
    return "agent" if who.is_agent else "user"


def create_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    auth = settings
    signer = TokenSigner(auth.jwt)
    metrics = metrics or Metrics("ws-gateway")
    hub = Hub(metrics)
    state: dict[str, asyncpg.Pool] = {}
    watched: dict[Client, tuple[str, Principal]] = {}
    linker = Linker(settings, hub, signer)  # seed 002's /ws/session/{sessionId}

    async def recheck() -> None:
        """Re-read agents' assignments; end sockets whose credentials were revoked."""
        pool = state["pool"]
        for client, (token, who) in list(watched.items()):
            try:
                now = await resolve(pool, signer, token, check_expiry=False)
                if now is None or now.tenant_id != who.tenant_id:
                    client.revoked.set()
                elif who.is_agent and who.user_id is not None:
                    client.chats = await assigned_chats(pool, who.user_id)
            except Exception:
                log.exception("re-checking a socket's credentials failed")

    async def rechecker(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), auth.ws_auth.refresh_s)
            if not stopping.is_set():
                await recheck()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await create_pool(settings.postgres)
        await linker.start(state["pool"])
        stopping = asyncio.Event()
        tasks = [
            # QR and pairing codes come from the secrets topic, in place of their redacted event-log copies.
            asyncio.create_task(pump(hub, settings.kafka.bootstrap_servers,
                                     [Topics.from_settings(settings.kafka).session_events,
                                      Topics.from_settings(settings.kafka).session_secrets], stopping, metrics,
                                     keys=KeyRing(state["pool"]))),
            # Campaign progress and status reach the same sockets (routed by ce_tenantid alike).
            asyncio.create_task(pump(hub, settings.kafka.bootstrap_servers,
                                     Topics.from_settings(settings.kafka).campaign_events, stopping, metrics,
                                     only=CAMPAIGN_TYPES, signals_ready=False)),
            asyncio.create_task(rechecker(stopping)),
        ]
        try:
            yield
        finally:
            stopping.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await linker.stop()
            await state["pool"].close()

    # Request spans come from this module's push spans instead (one per pushed record, in the record's trace).
    app = FastAPI(title="zapstream ws-gateway", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        body, content_type = exposition(metrics)
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> JsonResponse:
        ready = hub.ready.is_set()
        return JsonResponse({"status": "ok" if ready else "starting", "clients": sum(map(len, hub.clients.values()))},
                              status_code=200 if ready else 503)

    app.add_api_websocket_route("/ws/session/{session_id}", linker.endpoint)

    @app.websocket("/ws/sessions")
    async def sessions(websocket: WebSocket) -> None:
        pool = state["pool"]
        token = websocket.query_params.get("accessToken", "")
        who = await resolve(pool, signer, token) if token else None
        if who is None:
            await websocket.close(code=4401, reason="invalid access token")
            return
        chats = await assigned_chats(pool, who.user_id) if who.is_agent and who.user_id else None
        await websocket.accept()
        client = Client(who.tenant_id, settings.client_queue, chats=chats, sessions=who.session_ids)
        # Register before reading the snapshot so nothing falls between the two.
        hub.add(client)
        watched[client] = (token, who)
        connections = metrics.ws_connections.labels(tenant_class(who))
        connections.inc()
        try:
            session = await _snapshot_session(pool, who)
            env = snapshot(session["id"] if session else None, who.tenant_id, session, datetime.now(UTC))
            await websocket.send_text(env.value().decode())
            await _stream(websocket, client)
        except WebSocketDisconnect:
            pass
        finally:
            connections.dec()
            watched.pop(client, None)
            hub.remove(client)

    return app


async def _stream(websocket: WebSocket, client: Client) -> None:
    async for frame in frames(websocket, client, revocable=True):
        await websocket.send_text(frame.decode())
