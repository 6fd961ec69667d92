"""Bench 5: ws-gateway with 5,000 WebSocket clients: connections held and events/s delivered.

50 tenants × 100 sockets each. Events (a realistic ``session.messages.upsert``,
with the ``ce_tenantid`` header) are produced straight to the event topic at
``RATE``/s for ``SECONDS``; each event goes to the 100 sockets of its tenant.
The events' personal fields are sealed with their tenant's key as the session
runner seals them (``KeyRing.seal``, keys in the gateway's database), so the
gateway decrypts every record, as in production; the bench checks that the
sockets got clear text.
Baseline, same run: a bare FastAPI WebSocket endpoint under the same uvicorn
setup that generates the same frames itself, at the same rate, and fans them
out to the same 5,000 clients (no Kafka, no PostgreSQL, no auth).
The clients run in the bench process, on the same 2 cores.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import connect

from bench.common import BOOTSTRAP, Proc, bench_env, free_port, raise_nofile, rss_bytes, write_result
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.pii import PREFIX
from zapstream_platform.pii import KeyRing

TENANTS = 50
PER_TENANT = 100
RATE = 100  # events/s produced; ×100 sockets each = 10,000 frames/s offered
SECONDS = 10

BARE_APP = '''
import asyncio, sys, time
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
app = FastAPI()
groups: dict[str, set] = {}
@app.websocket("/ws/sessions")
async def ws(websocket: WebSocket) -> None:
    tenant = websocket.query_params["accessToken"]
    await websocket.accept()
    q: asyncio.Queue = asyncio.Queue(1000)
    groups.setdefault(tenant, set()).add(q)
    await websocket.send_text('{"type":"session.snapshot"}')
    try:
        while True:
            await websocket.send_text(await q.get())
    except WebSocketDisconnect:
        pass
    finally:
        groups[tenant].discard(q)
@app.post("/go")
async def go(rate: int, seconds: int, frame: str) -> dict:
    async def emit() -> None:
        tenants = sorted(groups)
        start = time.monotonic()
        for i in range(rate * seconds):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for q in list(groups.get(tenants[i % len(tenants)], ())):
                q.put_nowait(frame) if not q.full() else None
    asyncio.get_running_loop().create_task(emit())
    return {"ok": True}
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
'''


class Clients:
    def __init__(self) -> None:
        self.frames = 0
        self.conns: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.open = 0
        self.sample: Any = None  # the first event frame received (to check it is clear text)

    async def connect_all(self, url_for: list[str]) -> float:
        t0 = time.monotonic()
        sem = asyncio.Semaphore(64)

        async def one(url: str) -> None:
            async with sem:
                ws = await connect(url, open_timeout=60, compression=None, max_queue=None, ping_interval=None)
                await ws.recv()  # the snapshot
            self.conns.append(ws)
            self.open += 1
            self.tasks.append(asyncio.create_task(self._read(ws)))

        await asyncio.gather(*(one(u) for u in url_for))
        return time.monotonic() - t0

    async def _read(self, ws: Any) -> None:
        try:
            async for frame in ws:
                self.frames += 1
                if self.sample is None:
                    self.sample = frame
        except Exception:
            pass
        self.open -= 1

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*(ws.close() for ws in self.conns), return_exceptions=True)


def _frame(tenant: str) -> Envelope:
    sid = str(uuid.uuid4())
    return Envelope(type="session.messages.upsert", session_id=sid, event_id=str(uuid.uuid4()),
                    occurred_on="2026-01-01T00:00:00.000Z", version=5,
                    payload={"tenantId": tenant, "upsertType": "notify", "messages": [
                        {"id": "3EB0" + uuid.uuid4().hex[:16].upper(), "remoteJid": "51988887777@s.whatsapp.net",
                         "fromMe": False, "timestamp": 1767225600, "type": "conversation",
                         "text": "Hola! ¿Cómo estás? " * 4, "pushName": "Ana"}]})


async def _measure(clients: Clients, start_emit: Any, expected: int) -> dict[str, Any]:
    before = clients.frames
    t0 = time.monotonic()
    await start_emit()
    last_change, last = time.monotonic(), clients.frames
    while time.monotonic() - t0 < SECONDS + 30:
        await asyncio.sleep(0.5)
        if clients.frames != last:
            last_change, last = time.monotonic(), clients.frames
        elif clients.frames - before >= expected or time.monotonic() - last_change > 3:
            break
    got = clients.frames - before
    elapsed = last_change - t0
    return {"frames_offered": expected, "frames_delivered": got, "seconds": round(elapsed, 2),
            "frames_per_s": round(got / elapsed, 1), "connections_held": clients.open}


async def run() -> dict[str, Any]:
    nofile = raise_nofile(4 * TENANTS * PER_TENANT + 1000)
    n = TENANTS * PER_TENANT
    expected = RATE * SECONDS * PER_TENANT
    async with bench_env() as env:
        gw, ws_url = env.ws_gateway()
        keys = [(await env.api_key())[0:2] for _ in range(TENANTS)]
        clients = Clients()
        connect_s = await clients.connect_all(
            [f"{ws_url}/ws/sessions?accessToken={key}" for _, key in keys for _ in range(PER_TENANT)])
        frames = [(t, _frame(t)) for t, _ in keys]
        # Sealed as the runner seals them, with keys created in the gateway's database (its KeyRing reads them).
        pool = await asyncpg.create_pool(env.dsn, min_size=1, max_size=1)
        try:
            ring = KeyRing(pool)
            sealed = [(t, await ring.seal(f)) for t, f in frames]
        finally:
            await pool.close()
        assert all(PREFIX.encode() in f.value() for _, f in sealed), "the frames were not sealed"
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
        await producer.start()

        async def emit() -> None:
            async def go() -> None:
                start = time.monotonic()
                for i in range(RATE * SECONDS):
                    delay = start + i / RATE - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    _, env_ = sealed[i % len(sealed)]
                    await producer.send(env.topics.session_events, env_.value(), key=env_.session_id.encode(),
                                        headers=env_.headers("/bench"))
            asyncio.get_running_loop().create_task(go())

        try:
            zapstream = await _measure(clients, emit, expected)
            zapstream["connect_seconds"] = round(connect_s, 1)
            zapstream["gateway_rss_mb"] = round(rss_bytes(gw.pid) / 2**20, 1)
            sample = clients.sample if isinstance(clients.sample, str) else str(clients.sample)
            assert PREFIX not in sample and "Hola!" in sample, f"the gateway did not decrypt: {sample[:300]}"
            zapstream["decrypted"] = True
        finally:
            await producer.stop()
            await clients.close()
        gw.stop()

        port = free_port()
        bare = env.start(Proc("bare-ws", ["-c", BARE_APP, str(port)], {}, health=f"http://127.0.0.1:{port}/healthz"))
        bare_clients = Clients()
        bare_connect = await bare_clients.connect_all(
            [f"ws://127.0.0.1:{port}/ws/sessions?accessToken=t{t}" for t in range(TENANTS) for _ in range(PER_TENANT)])
        # The bare app sends what the gateway delivers: the clear frame.
        async def bare_emit() -> None:
            async with httpx.AsyncClient() as http:
                (await http.post(f"http://127.0.0.1:{port}/go", params={
                    "rate": RATE, "seconds": SECONDS, "frame": frames[0][1].value().decode()})).raise_for_status()

        try:
            baseline = await _measure(bare_clients, bare_emit, expected)
            baseline["connect_seconds"] = round(bare_connect, 1)
        finally:
            await bare_clients.close()
        bare.stop()
    result = {
        "what": f"{n} WebSocket clients ({TENANTS} tenants × {PER_TENANT}); {RATE} events/s for {SECONDS} s, "
                "each to its tenant's sockets; events sealed per tenant as the runner writes them, decrypted by "
                "the gateway",
        "clients": n, "nofile_limit": nofile,
        "zapstream": zapstream, "baseline_bare_fastapi_ws": baseline,
        "ratio_frames_per_s": round(zapstream["frames_per_s"] / baseline["frames_per_s"], 3),
        "ratio_connections_held": round(zapstream["connections_held"] / max(1, baseline["connections_held"]), 3),
        "notes": "clients, gateway and broker share 2 cores; the client side's own CPU caps both figures.",
    }
    write_result("5_ws_gateway", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
