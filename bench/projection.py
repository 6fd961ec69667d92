"""Bench 3 (projector → read model vs raw COPY) and bench 4 (replay from the event topic).

The events are real domain events (``Session`` aggregate → ``Envelope``), in the
mix a live session produces: a send's outcome, its upsert, delivered/read receipts,
incoming messages and contact names.

* Bench 3 applies them with the projector's handlers in batches of 1,000 per
  PostgreSQL transaction (what the projector does per poll), and compares with
  ``COPY`` of the very rows those handlers produced into empty tables.
* Bench 4 produces them to a private topic and times a fresh ``Projector``
  (new projection name, fresh database) rebuilding from offset 0 until it has
  caught up; the baseline is a bare read-committed consumer decoding the same
  records. 1,000,000 events would take too long on this machine, so it runs on
  ``REPLAY_EVENTS`` and extrapolates linearly (labelled as such in the results).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import BOOTSTRAP, bench_env, create_database, drop_database, write_result
from projector.app import Projector
from projector.handlers import HANDLERS
from projector.settings import Settings as ProjectorSettings
from zapstream_domain import commands as c
from zapstream_domain import payloads as p
from zapstream_domain.decisions import decide
from zapstream_platform.envelope import Envelope
from zapstream_platform.settings import PostgresSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RM_TABLES = ["rm_sessions", "rm_chats", "rm_messages", "rm_contacts", "rm_reactions", "rm_commands"]
PROJECT_EVENTS = 20_000
REPLAY_EVENTS = 60_000
BATCH = 1000


def generate(target_events: int, sessions: int = 20) -> list[Envelope]:
    """Interleaved streams of ``sessions`` sessions, about ``target_events`` events in all."""
    per_session = max(1, target_events // sessions)
    streams: list[list[Envelope]] = []
    for s_i in range(sessions):
        sid = str(uuid.uuid4())
        cmd = c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id=f"bench-{s_i % 5}",
                              issued_at="x")
        s, events = decide(None, cmd, NOW)
        assert s is not None
        s.record_connected(NOW, f"5199{s_i:07d}")
        out = [Envelope.from_domain(e) for e in events + s.collect_events()]
        i = 0
        while len(out) < per_session:
            chat = f"5198{i % 40:07d}@s.whatsapp.net"
            mid = f"m{i}"
            if i % 3 == 0:  # incoming message and the sender's push name
                s.record_incoming(NOW, [p.MessageSummary(id=mid, remote_jid=chat, from_me=False,
                                                         timestamp=1000 + i, text=f"hello {i}")])
                s.record_contact_names(NOW, [p.Contact(id=chat, notify=f"n{i % 7}")])
            else:  # a send: outcome + upsert, then delivered and read receipts
                s.record_incoming(NOW, [p.MessageSummary(id=mid, remote_jid=chat, from_me=True,
                                                         timestamp=1000 + i, text=f"sent {i}")])
                s.record_command_succeeded(NOW, str(uuid.uuid4()), "session.send_message", {"messageId": mid})
                for status in ("delivered", "read"):
                    s.record_receipts(NOW, [p.StatusUpdate(message_id=mid, remote_jid=chat, status=status,
                                                           status_at=2000 + i)])
            out += [Envelope.from_domain(e) for e in s.collect_events()]
            i += 1
        streams.append(out)
    # Round-robin interleaving: what a partitioned topic looks like to a consumer.
    mixed: list[Envelope] = []
    for k in range(max(map(len, streams))):
        mixed += [st[k] for st in streams if k < len(st)]
    return mixed


async def _apply(dsn: str, envs: list[Envelope]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        t = time.perf_counter()
        for i in range(0, len(envs), BATCH):
            async with conn.transaction():
                for env in envs[i:i + BATCH]:
                    handler = HANDLERS.get(env.type)
                    if handler is not None:
                        await handler(conn, env)
        return time.perf_counter() - t
    finally:
        await conn.close()


async def _base_table(conn: asyncpg.Connection, name: str) -> tuple[str, str]:
    """``rm_*`` may be a view over a versioned schema (projection versions); COPY needs the table."""
    row = await conn.fetchrow("""SELECT table_schema, table_name FROM information_schema.view_table_usage
                                 WHERE view_name = $1 LIMIT 1""", name)
    return (row["table_schema"], row["table_name"]) if row else ("public", name)


async def bench_projector() -> dict[str, Any]:
    envs = generate(PROJECT_EVENTS)
    names = [f"zb_proj_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    dsn_a, dsn_b = [await create_database(n) for n in names]
    try:
        seconds = await _apply(dsn_a, envs)
        a = await asyncpg.connect(dsn_a)
        b = await asyncpg.connect(dsn_b)
        try:
            tables = {t: [tuple(r.values()) for r in await a.fetch(f"SELECT * FROM {t}")] for t in RM_TABLES}
            rows = sum(map(len, tables.values()))
            t0 = time.perf_counter()
            async with b.transaction():
                for t, recs in tables.items():
                    if recs:
                        schema, table = await _base_table(b, t)
                        await b.copy_records_to_table(table, schema_name=schema, records=recs)
            copy_seconds = time.perf_counter() - t0
        finally:
            await a.close()
            await b.close()
    finally:
        for n in names:
            await drop_database(n)
    zs = len(envs) / seconds
    base = len(envs) / copy_seconds
    result = {
        "what": "events/s applied to the read model (projector handlers, 1,000 events per transaction) "
                "vs COPY of the same resulting rows (events/s equivalent)",
        "events": len(envs), "rows": rows,
        "zapstream": {"seconds": round(seconds, 2), "events_per_s": round(zs, 1)},
        "baseline_copy": {"seconds": round(copy_seconds, 3), "events_per_s": round(base, 1),
                          "rows_per_s": round(rows / copy_seconds, 1)},
        "ratio": round(zs / base, 4),
        "notes": "handlers run one statement per row (upserts, forward-only updates, unread recount); "
                 "COPY writes the final rows once with no reads.",
    }
    write_result("3_projector", result)
    return result


async def bench_replay() -> dict[str, Any]:
    envs = generate(REPLAY_EVENTS)
    async with bench_env(partitions=3) as env:
        topic = env.topics.session_events
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"bench-{env.run_id}",
                                    linger_ms=20, max_batch_size=512 * 1024)
        await producer.start()
        t0 = time.perf_counter()
        try:
            for i in range(0, len(envs), 5000):
                async with producer.transaction():
                    for e in envs[i:i + 5000]:
                        await producer.send(topic, e.value(), key=e.session_id.encode(),
                                            headers=e.headers("/bench"))
        finally:
            await producer.stop()
        produce_s = time.perf_counter() - t0

        # Baseline: read and decode every record, nothing else.
        # "earliest" + explicit seeks: see tests/faults/support.py (seek_to_beginning can lose to the
        # "latest" reset that assign() starts).
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p_) for p_ in range(env.kafka.partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, starts[tp])
            t0 = time.perf_counter()
            seen = 0
            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in tps])

            while await behind():
                for recs in (await consumer.getmany(timeout_ms=500, max_records=BATCH)).values():
                    for r in recs:
                        Envelope.from_record(r.value, r.headers)
                        seen += 1
            read_s = time.perf_counter() - t0
        finally:
            await consumer.stop()

        pool = await asyncpg.create_pool(env.dsn, min_size=1, max_size=4)
        assert pool is not None
        projection = f"replay-{env.run_id}"
        settings = ProjectorSettings(kafka=env.kafka, postgres=PostgresSettings(dsn=env.dsn), projection=projection,
                                     group_id=f"bench-{env.run_id}", batch_max=BATCH)
        projector = Projector(settings, pool)
        t0 = time.perf_counter()
        task = asyncio.create_task(projector.run())
        try:
            last = {tp.partition: off for tp, off in ends.items()}
            while True:
                rows = await pool.fetch("SELECT partition, next_offset FROM projector_offsets WHERE projection = $1",
                                        projection)
                stored = {r["partition"]: r["next_offset"] for r in rows}
                # next_offset points past the last data record; the end offset also counts commit markers.
                if all(stored.get(p_, 0) >= end - 1 for p_, end in last.items()):
                    break
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
            replay_s = time.perf_counter() - t0
        finally:
            projector.request_stop()
            await task
            await pool.close()
    zs = len(envs) / replay_s
    base = seen / read_s
    result = {
        "what": "replay: a fresh projection rebuilt from offset 0 of the event topic, events/s",
        "events_measured": len(envs),
        "extrapolated_to": 1_000_000,
        "zapstream": {"seconds": round(replay_s, 2), "events_per_s": round(zs, 1),
                      "extrapolated_seconds_for_1M": round(1_000_000 / zs), "extrapolated": True},
        "baseline_raw_consume": {"events": seen, "seconds": round(read_s, 2), "events_per_s": round(base, 1),
                                 "extrapolated_seconds_for_1M": round(1_000_000 / base), "extrapolated": True},
        "ratio": round(zs / base, 4),
        "produce_seconds": round(produce_s, 2),
        "notes": f"measured on {len(envs):,} events, not 1,000,000: generating and projecting 1M on this shared "
                 "2-core machine takes far longer than a bench may. The 1M figures are linear extrapolations; "
                 "index growth in rm_messages makes the real figure somewhat worse.",
    }
    write_result("4_replay", result)
    return result


if __name__ == "__main__":
    import sys

    which = sys.argv[1] if len(sys.argv) > 1 else "3"
    out = asyncio.run(bench_projector() if which == "3" else bench_replay())
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
