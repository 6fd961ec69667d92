"""The loop every socket of the gateway runs: its client's frames, until the peer leaves or must be dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from fastapi import WebSocket

from ws_gateway.hub import Client


async def frames(websocket: WebSocket, client: Client, *, revocable: bool) -> AsyncGenerator[bytes, None]:
    """Yield the frames queued for ``client`` in order, until the peer disconnects, the client overflows
    (closed 1013) or, when ``revocable``, its credentials are revoked (closed 4401). Use under
    ``contextlib.aclosing`` when the caller may stop early, so the watchers are cancelled at once."""

    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    watchers = {asyncio.create_task(receive()), overflow := asyncio.create_task(client.overflowed.wait())}
    revoked = asyncio.create_task(client.revoked.wait()) if revocable else None
    if revoked is not None:
        watchers.add(revoked)
    try:
        while True:
            getter = asyncio.create_task(client.queue.get())
            done, _ = await asyncio.wait({getter, *watchers}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if overflow in done:
                    await websocket.close(code=1013, reason="client too slow")
                elif revoked is not None and revoked in done:
                    await websocket.close(code=4401, reason="credentials revoked")
                return
            yield getter.result()
    finally:
        for task in watchers:
            task.cancel()
