"""``/ws/sessions`` (seed 000) and ``/ws/session/{sessionId}`` (seed 002) on the API's own address and port.

The WebSocket gateway serves the stream; this forwards the socket to it frame by frame, so
authentication, snapshots, filtering and close codes (4401 revoked, 1013 too slow) are the
gateway's, unchanged. A refused upgrade upstream is refused here too (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import quote

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

log = logging.getLogger(__name__)
router = APIRouter()


@router.websocket("/ws/sessions")
async def sessions_socket(websocket: WebSocket) -> None:
    await forward(websocket, "/ws/sessions")


@router.websocket("/ws/session/{session_id}")
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    """Seed 002's linking socket; its clients send their static token as ``Authorization: Bearer``."""
    await forward(websocket, f"/ws/session/{quote(session_id, safe='')}")


async def forward(websocket: WebSocket, path: str) -> None:
    gateway: str = websocket.app.state.ws_gateway_url
    url = f"{gateway.rstrip('/')}{path}"
    if websocket.url.query:
        url += f"?{websocket.url.query}"
    headers = {"Authorization": websocket.headers["authorization"]} if "authorization" in websocket.headers else None
    try:
        upstream = await connect(url, open_timeout=10, max_size=None, ping_interval=None,
                                 additional_headers=headers)
    except (InvalidHandshake, OSError, TimeoutError):
        await websocket.close(code=4401, reason="invalid access token")  # before accept: the client sees 403
        return
    await websocket.accept()
    try:
        await _pump(websocket, upstream)
    finally:
        await upstream.close()


async def _pump(websocket: WebSocket, upstream: ClientConnection) -> None:
    async def down() -> None:
        async for frame in upstream:
            if isinstance(frame, bytes):
                await websocket.send_bytes(frame)
            else:
                await websocket.send_text(frame)

    async def up() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done:  # the gateway ended the stream: pass its close code on
            code = upstream.close_code or 1000
            reason = upstream.close_reason or ""
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=code, reason=reason)
    except (ConnectionClosed, WebSocketDisconnect):
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
