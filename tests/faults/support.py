"""Checks shared by the fault tests: exactly-once at WhatsApp, in the topic, and in the read model.

After every fault the same three things must hold:

1. the simulator received every accepted message exactly once (``count == 1``);
2. the event topic holds every event exactly once: unique eventIds, gapless
   per-session versions, one intent / one upsert / one outcome per message;
3. the live read model equals a fresh replay of the whole topic into a newly
   migrated database (every ``rm_*`` row, compared in primary-key order).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.conftest import ADMIN_DSN, PG_BASE
from tests.support.reference_projection import HANDLERS
from tests.support.stack import REPO
from zapstream_contracts.envelope import Envelope
from zapstream_platform.db import create_database, drop_database, migrate
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import partitions_of

# Every read-model table and its primary key (the only thing the comparison ignores is row order).
RM_TABLES = {
    "rm_sessions": "id",
    "rm_chats": "session_id, jid",
    "rm_messages": "session_id, id",
    "rm_contacts": "session_id, jid",
    "rm_reactions": "session_id, message_id, actor_jid",
    "rm_commands": "command_id",
}


def new_phone() -> str:
    return "518" + "".join(random.choices("0123456789", k=8))


@dataclass
class Record:
    partition: int
    offset: int
    env: Envelope


async def read_records(bootstrap: str, topic: str) -> list[Record]:
    """Every committed record of ``topic`` with its partition and offset (read-committed)."""
    parts: list[int] = []
    for _ in range(20):  # metadata can be briefly unavailable (e.g. right after a broker restart)
        parts = await partitions_of(bootstrap, topic)
        if parts:
            break
        await asyncio.sleep(0.5)
    # An empty read would make every exactly-once check pass vacuously.
    assert parts, f"no partitions found for {topic}"
    # auto_offset_reset="earliest" and explicit seeks: with the default ("latest"), the reset that
    # assign() starts can land after seek_to_beginning() and leave the position at the end, so
    # the read returns nothing (seen intermittently; the same pattern is in tests/support/clients.py).
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        out: list[Record] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                out += [Record(tp.partition, r.offset, Envelope.from_record(r.value, r.headers))
                        for r in batch.get(tp, [])]
        return out
    finally:
        await consumer.stop()


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.5,
                     what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (httpx.HTTPError, OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s (last: {str(last)[:300]})")


@dataclass
class Load:
    """Posts messages from several sessions to one contact and remembers what was accepted."""

    http: httpx.AsyncClient
    sessions: list[str]
    contact: str
    accepted: dict[str, str] = field(default_factory=dict)  # messageId -> sessionId
    uncertain: int = 0  # POSTs whose answer was lost (timeout / 5xx): may or may not exist
    rejected: Counter[int] = field(default_factory=Counter)

    async def post(self, i: int) -> None:
        sid = self.sessions[i % len(self.sessions)]
        try:
            r = await self.http.post(f"/sessions/{sid}/messages", json={"to": self.contact, "content": f"load {i}"})
        except httpx.HTTPError:
            self.uncertain += 1
            return
        if r.status_code == 202:
            self.accepted[r.json()["messageId"]] = sid
        elif r.status_code >= 500:
            self.uncertain += 1
        else:
            self.rejected[r.status_code] += 1

    async def run(self, total: int, rate: float, concurrency: int = 20) -> None:
        """``total`` posts at about ``rate``/s, at most ``concurrency`` in flight."""
        sem = asyncio.Semaphore(concurrency)
        start = time.monotonic()

        async def one(i: int) -> None:
            async with sem:
                await self.post(i)

        tasks = []
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)


async def inbox(sim: httpx.AsyncClient, phone: str) -> list[dict[str, Any]]:
    r = await sim.get(f"/control/accounts/{phone}/inbox")
    r.raise_for_status()
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


async def check_whatsapp_exactly_once(sim: httpx.AsyncClient, load: Load, timeout: float = 180) -> dict[str, Any]:
    """Every accepted message reached the contact once; nothing arrived that was never asked for."""
    expected = set(load.accepted)

    async def all_there() -> list[dict[str, Any]] | None:
        msgs = await inbox(sim, load.contact)
        return msgs if expected <= {m["id"] for m in msgs} else None

    msgs = await wait_until(all_there, timeout, what=f"{len(expected)} messages in the simulator inbox")
    ids = Counter(m["id"] for m in msgs)
    dup_entries = [m for m, n in ids.items() if n > 1]
    resent = [m["id"] for m in msgs if m.get("count", 1) != 1]
    extra = set(ids) - expected
    assert not dup_entries, f"inbox lists messages twice: {dup_entries[:5]}"
    assert not resent, f"the simulator received {len(resent)} messages more than once: {resent[:5]}"
    # A POST whose answer was lost may still have been sent; nothing else may appear.
    assert len(extra) <= load.uncertain, f"{len(extra)} unexpected messages, only {load.uncertain} uncertain posts"
    return {"accepted": len(expected), "received": len(ids), "uncertain_posts": load.uncertain,
            "uncertain_delivered": len(extra)}


async def settled_records(bootstrap: str, topic: str, load: Load, timeout: float = 180) -> list[Record]:
    """Wait until every accepted send has its outcome event, then return the whole topic."""
    expected = set(load.accepted)

    async def done() -> list[Record] | None:
        records = await read_records(bootstrap, topic)
        finished = {r.env.payload.get("result", {}).get("messageId") for r in records
                    if r.env.type == "session.command.succeeded"
                    and r.env.payload["commandType"] == "session.send_message"}
        return records if expected <= finished else None

    return await wait_until(done, timeout, interval=1, what="every send's outcome in the event topic")


def check_topic_exactly_once(records: list[Record]) -> dict[str, Any]:
    """The whole topic: unique eventIds, gapless per-session versions, one intent/upsert/outcome each."""
    envs = [r.env for r in records]
    ids = Counter(e.event_id for e in envs)
    dup = [i for i, n in ids.items() if n > 1]
    assert not dup, f"{len(dup)} eventIds appear more than once"

    versions: dict[str, list[int]] = defaultdict(list)
    partition_of: dict[str, set[int]] = defaultdict(set)
    for r in records:
        if r.env.version > 0:
            versions[r.env.session_id].append(r.env.version)
        partition_of[r.env.session_id].add(r.partition)
    for sid, vs in versions.items():
        assert vs == list(range(1, len(vs) + 1)), f"session {sid}: versions not gapless/unique: {_gaps(vs)}"
    assert all(len(p) == 1 for p in partition_of.values()), "a session's events span partitions"

    intents = Counter((e.session_id, e.payload["messageId"]) for e in envs
                      if e.type == "session.messages.send_requested")
    upserts = Counter((e.session_id, m["id"]) for e in envs if e.type == "session.messages.upsert"
                      for m in e.payload["messages"] if m["fromMe"])
    outcomes = Counter(e.payload["commandId"] for e in envs
                       if e.type in ("session.command.succeeded", "session.command.failed"))
    assert max(intents.values(), default=1) == 1, "a send intent was recorded twice"
    assert max(upserts.values(), default=1) == 1, "a sent message was upserted twice"
    assert max(outcomes.values(), default=1) == 1, "a command has two outcomes"
    assert set(upserts) <= set(intents), "an upsert without an intent"
    failed_sends = [e for e in envs if e.type == "session.command.failed"
                    and e.payload["commandType"] == "session.send_message"]
    return {"events": len(envs), "sessions": len(versions), "intents": len(intents), "upserts": len(upserts),
            "outcomes": len(outcomes), "failed_sends": len(failed_sends)}


def _gaps(vs: list[int]) -> str:
    c = Counter(vs)
    dups = sorted(v for v, n in c.items() if n > 1)[:5]
    missing = sorted(set(range(1, max(vs) + 1)) - set(vs))[:5]
    return f"dups={dups} missing={missing} n={len(vs)} max={max(vs)}"


async def wait_projector_caught_up(dsn: str, records: list[Record], topic: str, projection: str = "main",
                                   timeout: float = 120) -> None:
    last: dict[int, int] = {}
    for r in records:
        last[r.partition] = max(last.get(r.partition, -1), r.offset)

    async def caught_up() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT partition, next_offset FROM projector_offsets "
                                    "WHERE projection = $1 AND topic = $2", projection, topic)
        finally:
            await conn.close()
        stored = {r["partition"]: r["next_offset"] for r in rows}
        return all(stored.get(p, 0) >= off + 1 for p, off in last.items())

    await wait_until(caught_up, timeout, what="projector caught up with the topic")


async def dump_read_model(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: [tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY {key}")]
                for t, key in RM_TABLES.items()}
    finally:
        await conn.close()


async def fresh_replay(records: Iterable[Record]) -> dict[str, list[tuple[Any, ...]]]:
    """Project ``records`` (partition order kept) into a new migrated database with the per-row reference handlers
    (the live projector writes batches; both must give the same rows)."""
    name = f"zt_replay_{uuid.uuid4().hex[:8]}"
    await create_database(ADMIN_DSN, name)
    try:
        dsn = f"{PG_BASE}/{name}"
        await migrate(dsn, REPO / "db" / "migrations")
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                for r in records:
                    handler = HANDLERS.get(r.env.type)
                    if handler is not None:
                        await handler(conn, r.env)
        finally:
            await conn.close()
        return await dump_read_model(dsn)
    finally:
        await drop_database(ADMIN_DSN, name)


async def check_read_model_equals_replay(dsn: str, bootstrap: str, topic: str) -> dict[str, int]:
    """The live projection, once caught up and quiet, equals a fresh replay of the same topic, row by row."""
    for _ in range(10):
        records = await read_records(bootstrap, topic)
        await wait_projector_caught_up(dsn, records, topic)
        live = await dump_read_model(dsn)
        again = await read_records(bootstrap, topic)
        if len(again) == len(records):
            break  # nothing arrived between the read and the dump: the dump is of exactly these records
        await asyncio.sleep(2)
    else:
        raise AssertionError("the event topic never stopped growing")
    replay = await fresh_replay(await opened(dsn, records))
    for table in RM_TABLES:
        a, b = live[table], replay[table]
        if a != b:
            only_live = [r for r in a if r not in b][:3]
            only_replay = [r for r in b if r not in a][:3]
            raise AssertionError(f"{table}: live {len(a)} rows vs replay {len(b)} rows; "
                                 f"only live: {only_live}; only replay: {only_replay}")
    return {t: len(rows) for t, rows in live.items()}


async def opened(dsn: str, records: list[Record]) -> list[Record]:
    """The records with their personal fields decrypted, as the projector reads them (the topic holds them
    encrypted with the tenants' keys, in the run's database)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        keys = KeyRing(pool)
        return [Record(r.partition, r.offset, await keys.open(r.env)) for r in records]
    finally:
        await pool.close()


async def verify_everything(*, dsn: str, bootstrap: str, topic: str, sim: httpx.AsyncClient, load: Load,
                            ) -> dict[str, Any]:
    """The three checks, in order; returns figures for RESULTS.md."""
    whatsapp = await check_whatsapp_exactly_once(sim, load)
    records = await settled_records(bootstrap, topic, load)
    check_topic_exactly_once(records)
    rows = await check_read_model_equals_replay(dsn, bootstrap, topic)
    # The topic again, now that receipts have settled too; it can only have grown.
    final = await read_records(bootstrap, topic)
    assert len(final) >= len(records), f"the topic shrank: {len(records)} records, then {len(final)}"
    topic_figures = check_topic_exactly_once(final)
    return {"whatsapp": whatsapp, "topic": topic_figures, "read_model_rows": rows}


def infra_script(server: str, cmd: str) -> None:
    """``infra/bin/<server>.sh <cmd>`` (down, up, wait): the same scripts ``make infra-up`` uses."""
    subprocess.run(["bash", str(REPO / "infra" / "bin" / f"{server}.sh"), cmd], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)


async def restart_during_load(server: str, *, pause_s: float, total: int, stack: Any, make_load: Any,
                              sim: httpx.AsyncClient, dsn: str, bootstrap: str, topic: str,
                              record: Callable[..., None]) -> None:
    """Send ``total`` messages at 40/s, stop ``server`` 4 s in for ``pause_s``, bring it back, then
    check that every service survived and everything accepted happened exactly once."""
    load = await make_load(4)
    t0 = time.monotonic()
    loader = asyncio.create_task(load.run(total, rate=40))
    try:
        await asyncio.sleep(4)
        t_down = time.monotonic()
        try:
            await asyncio.to_thread(infra_script, server, "down")
            await asyncio.sleep(pause_s)
        finally:
            await asyncio.to_thread(infra_script, server, "up")
            await asyncio.to_thread(infra_script, server, "wait")
        outage = time.monotonic() - t_down
        await loader
    finally:
        if not loader.done():
            loader.cancel()
        await load.http.aclose()
    alive = {name: p.popen is not None and p.popen.poll() is None for name, p in stack.procs.items()}
    record(outage_s=round(outage, 1), accepted=len(load.accepted), uncertain_posts=load.uncertain,
           rejected=dict(load.rejected), services_alive_after=alive)
    assert all(alive.values()), f"services died during the outage: {alive}"
    figures = await verify_everything(dsn=dsn, bootstrap=bootstrap, topic=topic, sim=sim, load=load)
    record(total_s=round(time.monotonic() - t0, 1), **figures)
