"""Bench "runner relay": commands per second through one session runner with the simulator driver.

5,000 ``session.send_message`` commands for 20 linked sessions are put on the command topic at
once (straight to Kafka: the API is not measured here); the figure is the rate at which their
``session.command.succeeded`` outcomes are committed to the event topic. Each command costs the
runner an intent, a WhatsApp call to the simulator and an outcome: three events. The runner seals the
personal fields of what it writes with the tenant's key (``KeyRing.seal`` in ``_send_env``, keys in the
bench's database), so the figure includes encryption, as in production; the bench counts the sealed records.

Baseline, same run, same broker: a bare transactional consume → produce loop in aiokafka over
the same number of records with the same batch size (``RUNNER_BATCH_MAX``, 500), producing the
same three records per input and committing offsets in each batch's transaction.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import BOOTSTRAP, LOGS, bench_env, write_result
from zapstream_contracts import commands as c
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.pii import PREFIX
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, ensure_topics

SESSIONS = 20
COMMANDS = 5000
BATCH = 500
CONTACT = "51955500003"
TENANT = "bench-relay"


def _command(cls: type[c.Command], sid: str, **fields: Any) -> bytes:
    cmd = cls(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=TENANT,
              issued_at=datetime.now(UTC).isoformat(), **fields)
    return cmd.model_dump_json(by_alias=True).encode()


async def _tail_until(consumer: AIOKafkaConsumer, want: set[str], seen: dict[str, int]) -> float:
    """Read committed events until every command id in ``want`` succeeded; return the time it happened.

    ``seen`` counts the records read and those with an encrypted field (the runner sealed them)."""
    sealed = PREFIX.encode()
    while want:
        for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
            seen["records"] += len(records)
            seen["sealed"] += sum(sealed in r.value for r in records)
            for r in records:
                env = Envelope.from_record(r.value, r.headers)
                if env.type in ("session.command.succeeded", "session.command.failed"):
                    want.discard(str(env.payload.get("commandId")))
    return time.monotonic()


async def _zapstream() -> dict[str, Any]:
    async with bench_env() as env:
        _, sim_url = env.simulator()
        runner = env.runner(sim_url)
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all",
                                    linger_ms=5, max_batch_size=512 * 1024)
        await producer.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            sids = [str(uuid.uuid4()) for _ in range(SESSIONS)]
            for sid in sids:
                await producer.send(env.topics.session_commands, _command(c.CreateSession, sid), key=sid.encode())
            await producer.flush()
            async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
                (await sim.post(f"/control/contacts/{CONTACT}", json={"autoReply": False, "autoRead": False})
                 ).raise_for_status()
                for i, sid in enumerate(sids):
                    for _ in range(300):
                        if (await sim.post("/control/scan", json={"sessionId": sid, "phone": f"5198{i:08d}"})
                                ).status_code == 200:
                            break
                        await asyncio.sleep(0.2)
                    else:
                        raise RuntimeError("no QR")
                while not all(d["connected"] for d in (await sim.get("/control/devices")).json()["devices"]):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # the connected events and history syncs settle
            tps = [TopicPartition(env.topics.session_events, p) for p in range(env.kafka.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            bodies = []
            ids: set[str] = set()
            for i in range(COMMANDS):
                sid = sids[i % SESSIONS]
                body = _command(c.SendMessage, sid, to=CONTACT, content=f"relay {i}")
                ids.add(orjson.loads(body)["commandId"])
                bodies.append((sid, body))
            load = []
            profiler = _profile(runner.pid)
            t0 = time.monotonic()
            for sid, body in bodies:
                await producer.send(env.topics.session_commands, body, key=sid.encode())
            await producer.flush()
            produced = time.monotonic() - t0
            sampler = asyncio.create_task(_sample(load))
            seen = {"records": 0, "sealed": 0}
            done = await _tail_until(consumer, ids, seen)
            sampler.cancel()
            if profiler is not None:
                profiler.wait(30)
        finally:
            await consumer.stop()
            await producer.stop()
    seconds = done - t0
    assert seen["sealed"], f"the runner sealed nothing: {seen}"
    return {"commands": COMMANDS, "sessions": SESSIONS, "seconds": round(seconds, 2),
            "produce_seconds": round(produced, 2), "commands_per_s": round(COMMANDS / seconds, 1),
            "events_read": seen["records"], "events_sealed": seen["sealed"], "load_average": load}


def _profile(pid: int) -> subprocess.Popen[bytes] | None:
    """With BENCH_PYSPY=1: py-spy samples the runner for the run (collapsed stacks in .data/bench-logs)."""
    if os.environ.get("BENCH_PYSPY") != "1" or shutil.which("py-spy") is None:
        return None
    out = LOGS / "runner-relay.pyspy.txt"
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", "6", "--rate", "200",
                             "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _sample(out: list[float]) -> None:
    while True:
        out.append(os.getloadavg()[0])
        await asyncio.sleep(2)


async def _bare() -> dict[str, Any]:
    kafka = KafkaSettings(topic_prefix=f"zb-relay-{uuid.uuid4().hex[:6]}", partitions=3)
    await ensure_topics(kafka)
    topics = Topics.from_settings(kafka)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    body = _command(c.SendMessage, str(uuid.uuid4()), to=CONTACT, content="relay")
    for i in range(COMMANDS):
        await producer.send(topics.session_commands, body, key=str(i % SESSIONS).encode())
    await producer.stop()
    group = f"zb-relay-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(topics.session_commands, bootstrap_servers=BOOTSTRAP, group_id=group,
                                isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=BATCH)
    relay = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"{group}-tx", linger_ms=2,
                             max_batch_size=256 * 1024)
    await consumer.start()
    await relay.start()
    load: list[float] = []
    sampler = asyncio.create_task(_sample(load))
    try:
        seen = 0
        t0 = time.monotonic()
        while seen < COMMANDS:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            for tp, records in batches.items():
                if not records:
                    continue
                async with relay.transaction():
                    for r in records:
                        for _ in range(3):  # intent, upsert, outcome
                            await relay.send(topics.session_events, r.value, key=r.key, partition=tp.partition)
                    await relay.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
                seen += len(records)
        seconds = time.monotonic() - t0
    finally:
        sampler.cancel()
        await relay.stop()
        await consumer.stop()
    return {"commands": COMMANDS, "batch": BATCH, "seconds": round(seconds, 2),
            "commands_per_s": round(COMMANDS / seconds, 1), "load_average": load}


async def run() -> dict[str, Any]:
    zapstream = await _zapstream()
    bare = await _bare()
    result = {
        "what": f"{COMMANDS:,} send commands for {SESSIONS} linked sessions put on the command topic at once; "
                "rate at which one runner (simulator driver) commits their outcomes (its events' personal fields "
                "sealed per tenant, as in production)",
        "zapstream": zapstream,
        "baseline_bare_transactional_relay": bare,
        "ratio": round(zapstream["commands_per_s"] / bare["commands_per_s"], 3),
        "goal": "≥ 0.5 × the bare transactional relay",
    }
    write_result("10_runner_relay", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
