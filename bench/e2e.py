"""Bench 2: end to end, from the start of ``POST /sessions/{id}/messages`` to the
``session.messages.upsert`` of that message on the tenant's WebSocket.

Open loop across 100 linked sessions. The issue asks for 500 msg/s; this 2-core
machine, shared with other engineers and running the whole stack (Kafka,
PostgreSQL, simulator, four services and the load generator), cannot sustain
that, so the bench first offers 500 msg/s for 2 s and records what it reached
(the rate at which the WebSocket events actually arrived), then measures at a
rate it can sustain (``SUSTAINED_RATE``), and says so.

Baseline, same run, same rate: one Kafka hop on the same broker, an idempotent
``acks=all`` produce to a read-committed consumer (zapstream's path has three
such hops, two of them transactional, plus HTTP, PostgreSQL and the simulator).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from websockets.asyncio.client import connect

from bench.common import BOOTSTRAP, bench_env, pct, write_result
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, ensure_topics

SESSIONS = 100
TARGET_RATE = 500
TARGET_SECONDS = 2
SUSTAINED_RATE = 15
SUSTAINED_SECONDS = 20
CONTACT = "51955500001"


async def _open_loop(api: httpx.AsyncClient, sids: list[str], rate: float, seconds: float,
                     arrived: dict[str, float]) -> dict[str, Any]:
    sent: dict[str, float] = {}
    errors = 0
    n = int(rate * seconds)
    start = time.monotonic()

    async def one(i: int) -> None:
        nonlocal errors
        t = time.monotonic()
        try:
            r = await api.post(f"/sessions/{sids[i % len(sids)]}/messages", json={"to": CONTACT, "content": f"e2e {i}"})
            r.raise_for_status()
            sent[r.json()["messageId"]] = t
        except httpx.HTTPError:
            errors += 1

    tasks = []
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    posting = time.monotonic() - start
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 180  # a backlog past capacity drains at the real rate
    while time.monotonic() < deadline and not set(sent) <= set(arrived):  # noqa: ASYNC110  bounded poll
        await asyncio.sleep(0.2)
    lat = [arrived[m] - t for m, t in sent.items() if m in arrived]
    last = max((arrived[m] for m in sent if m in arrived), default=start)
    return {"offered_rate": rate, "offered": n, "accepted": len(sent), "errors": errors,
            "posting_seconds": round(posting, 2), "delivered_on_ws": len(lat),
            "achieved_rate": round(len(lat) / (last - start), 1) if lat else 0,
            "p50_ms": round(pct(lat, 50) * 1000, 1), "p99_ms": round(pct(lat, 99) * 1000, 1)}


async def _kafka_hop(rate: float, seconds: float) -> dict[str, Any]:
    kafka = KafkaSettings(topic_prefix=f"zb-hop-{uuid.uuid4().hex[:6]}", partitions=3)
    await ensure_topics(kafka)
    topic = Topics.from_settings(kafka).session_events
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    sent: dict[bytes, float] = {}
    got: dict[bytes, float] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        async def tail() -> None:
            while True:
                for recs in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.monotonic()
                    for r in recs:
                        got[r.value] = now

        tailer = asyncio.create_task(tail())
        n = int(rate * seconds)
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key = f"{i}".encode()
            sent[key] = time.monotonic()
            await producer.send(topic, key, key=key)
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:  # noqa: ASYNC110  bounded poll
            await asyncio.sleep(0.1)
        tailer.cancel()
    finally:
        await producer.stop()
        await consumer.stop()
    lat = [got[k] - t for k, t in sent.items() if k in got]
    return {"rate": rate, "messages": len(sent), "received": len(lat),
            "p50_ms": round(pct(lat, 50) * 1000, 2), "p99_ms": round(pct(lat, 99) * 1000, 2)}


async def run() -> dict[str, Any]:
    async with bench_env() as env:
        _, sim_url = env.simulator()
        env.runner(sim_url)
        env.projector()
        _, api_url = env.command_api()
        _, ws_url = env.ws_gateway()
        _, key = await env.api_key()
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60, limits=limits) as api, \
                httpx.AsyncClient(base_url=sim_url, timeout=60) as sim:
            (await sim.post(f"/control/contacts/{CONTACT}", json={"autoReply": False, "autoRead": False})
             ).raise_for_status()
            sem = asyncio.Semaphore(16)

            async def link(i: int) -> str:
                async with sem:
                    r = await api.post("/sessions", json={})
                    r.raise_for_status()
                sid: str = r.json()["sessionId"]
                for _ in range(300):
                    async with sem:
                        s = await sim.post("/control/scan", json={"sessionId": sid, "phone": f"5196{i:08d}"})
                    if s.status_code == 200:
                        return sid
                    await asyncio.sleep(0.2)
                raise RuntimeError("no QR")

            arrived: dict[str, float] = {}
            async with connect(f"{ws_url}/ws/sessions?accessToken={key}", max_size=None,
                               compression=None) as ws:

                async def read() -> None:
                    async for frame in ws:
                        now = time.monotonic()
                        e = orjson.loads(frame)
                        if e["type"] == "session.messages.upsert":
                            for m in e["payload"]["messages"]:
                                if m["fromMe"]:
                                    arrived.setdefault(m["id"], now)

                reader = asyncio.create_task(read())
                sids = await asyncio.gather(*(link(i) for i in range(SESSIONS)))
                await asyncio.sleep(5)  # connected events and history syncs settle
                await _open_loop(api, sids, 20, 2, arrived)  # warm-up
                target = await _open_loop(api, sids, TARGET_RATE, TARGET_SECONDS, arrived)
                await asyncio.sleep(5)
                sustained = await _open_loop(api, sids, SUSTAINED_RATE, SUSTAINED_SECONDS, arrived)
                reader.cancel()
    hop = await _kafka_hop(SUSTAINED_RATE, SUSTAINED_SECONDS)
    target_ok = target["achieved_rate"] >= 0.9 * TARGET_RATE and target["p99_ms"] < 2000
    result = {
        "what": "POST /sessions/{id}/messages → session.messages.upsert on the tenant's WebSocket, open loop, "
                f"{SESSIONS} sessions",
        "sessions": SESSIONS,
        "at_target_rate": {**target, "sustained": target_ok},
        "zapstream": sustained,
        "baseline_one_kafka_hop": hop,
        "ratio_p50": round(sustained["p50_ms"] / hop["p50_ms"], 1),
        "ratio_p99": round(sustained["p99_ms"] / hop["p99_ms"], 1),
        "notes": f"500 msg/s was {'sustained' if target_ok else 'NOT sustained'} on this shared 2-core machine "
                 f"(whole stack + load generator on 2 cores); the headline figure is at {SUSTAINED_RATE} msg/s.",
    }
    write_result("2_end_to_end", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
