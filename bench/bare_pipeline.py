"""The end-to-end baseline: zapstream's hops without its domain, one process per hop like the stack.

``python -m bench.bare_pipeline api PORT PREFIX``: FastAPI; ``POST /send`` produces the body to
``PREFIX.in`` (idempotent, acks=all) and answers 202 once Kafka acknowledged it.
``python -m bench.bare_pipeline relay PREFIX``: consumes ``PREFIX.in`` read-committed and
produces each record to ``PREFIX.out`` in one transaction per poll with the offsets.
``python -m bench.bare_pipeline ws PORT PREFIX``: tails ``PREFIX.out`` read-committed and pushes
every record to the connected WebSockets.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

BOOTSTRAP = "127.0.0.1:19092"
PARTITIONS = 3


def api(port: int, prefix: str) -> None:
    state: dict[str, AIOKafkaProducer] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=2)
        await producer.start()
        state["p"] = producer
        yield
        await producer.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/send", status_code=202)
    async def send(request: Request) -> Response:
        body = await request.body()
        await state["p"].send_and_wait(f"{prefix}.in", body, key=body[:16])
        return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


async def relay(prefix: str) -> None:
    group = f"{prefix}-relay"
    consumer = AIOKafkaConsumer(f"{prefix}.in", bootstrap_servers=BOOTSTRAP, group_id=group,
                                isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await consumer.start()
    producers: dict[int, AIOKafkaProducer] = {}
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for tp, records in batches.items():
                if not records:
                    continue
                producer = producers.get(tp.partition)
                if producer is None:
                    producer = producers[tp.partition] = AIOKafkaProducer(
                        bootstrap_servers=BOOTSTRAP, transactional_id=f"{group}.{tp.partition}", linger_ms=2)
                    await producer.start()
                async with producer.transaction():
                    for r in records:
                        await producer.send(f"{prefix}.out", r.value, key=r.key, partition=tp.partition)
                    await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
    finally:
        for p in producers.values():
            await p.stop()
        await consumer.stop()


def ws(port: int, prefix: str) -> None:
    sockets: set[WebSocket] = set()

    async def tail() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="latest")
        await consumer.start()
        tps = [TopicPartition(f"{prefix}.out", p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for r in records:
                        frame = r.value.decode()
                        await asyncio.gather(*(s.send_text(frame) for s in list(sockets)), return_exceptions=True)
        finally:
            await consumer.stop()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(tail())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            sockets.discard(websocket)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "api":
        api(int(sys.argv[2]), sys.argv[3])
    elif mode == "relay":
        asyncio.run(relay(sys.argv[2]))
    else:
        ws(int(sys.argv[2]), sys.argv[3])
