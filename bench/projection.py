"""Bench 3 (projector → read model vs raw COPY) and bench 4 (a real 1,000,000-event replay).

Both use one event mix, what live sessions put on the topic: linking (created, QR, connected), history-sync
pages of 25 messages and the contacts that come with them, sends (the command's outcome, the upsert, then
``delivered`` and ``read`` receipts), incoming messages with their senders' push names, this account's reads
of them, reactions (some removed again), edits, revokes, and later history pages. The generator writes the
wire format directly (same JSON and headers as ``Envelope``), because building a million events through the
``Session`` aggregate takes longer than projecting them. Personal fields are sealed as the session runner seals
them (``zapstream_contracts.pii.encrypt_payload`` with each tenant's key, the tenant as subject); the keys are
created in the bench's database through the runner's key store (``KeyRing.writer_key``), so the projector's
``KeyRing`` finds them and every figure includes decryption, as in production.

* Bench 3 opens the events with a ``KeyRing`` and applies them with ``projector.handlers.project`` in
  transactions of the projector's poll batch (``batch_max``), what ``Projector.apply_batch`` does, and compares with ``COPY`` of the very rows it produced into empty tables. It also
  runs a rebuild's batch size (``replay_batch``) and checks that both give the same rows.
* Bench 4 produces 1,000,000 events (1,000 sessions, 50 tenants) to a private topic, then runs
  ``projector.replay.replay`` (what ``make replay`` runs: a new schema rebuilt from offset 0, then swapped
  in) and times it, wall clock, from the call to the swap. Nothing is extrapolated. The baseline, in the same
  run and on the same topic, right before and right after the replay: a bare read_committed consumer with
  the replay's fetch and garbage-collector settings that decodes every record (``Envelope.from_record``) and
  does nothing else.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from bench.common import BOOTSTRAP, LoadSampler, bench_env, create_database, drop_database, write_result
from projector.handlers import project
from projector.replay import bulk_gc, replay, replay_consumer
from projector.settings import Settings as ProjectorSettings
from zapstream_contracts.envelope import Envelope, dataschema
from zapstream_contracts.events import SESSION_EVENTS
from zapstream_contracts.pii import PREFIX, encrypt_payload
from zapstream_platform.db import create_pool
from zapstream_platform.pii import KeyRing
from zapstream_platform.settings import PostgresSettings

NOTES_PROJECTOR = (
    "Per batch the projector reads the rows the batch names (one query per table, keys in and rows out as one "
    "JSON document), folds the events in memory in order, then writes new rows with COPY, changed rows with one "
    "UPDATE … FROM json_to_recordset per table, and chats' last messages together with the unread recount in "
    "one statement; the baseline COPYs the final rows once, with no reads and no fold. Since issue 17 the events "
    "carry their personal fields encrypted per tenant (AES-GCM, as the runner writes them) and the timed section "
    "decrypts them (KeyRing.open) and parses each payload into its contract model (Envelope.data) before "
    "projecting. {goal} py-spy of this bench after issue 17 (200 Hz, the timed section only): parsing payloads "
    "into the contract models (pydantic validation) is about a third of the projector's samples, decrypting "
    "(KeyRing.open: walking the marked fields, AES-GCM, base64) about a seventh, the fold, loads and writes "
    "the rest with asyncpg. Before issue 17 (no parsing, no decryption): "
    "py-spy and per-phase CPU timing (100,000 events, 5,000 per transaction): the projector's Python side cost "
    "about 14 µs per event (the fold ~5 µs, loading ~3.5 µs: collecting keys, the JSON round trip, "
    "bookkeeping; writing ~4 µs: COPY encoding, JSON of changed rows, the chats statement; transactions the "
    "rest), and PostgreSQL about as much again for the reads, the COPY, the chat updates and the recount, while "
    "COPY of the final rows alone costs 2–4 µs per event. At 1,000 per transaction the per-statement overhead "
    "adds about a quarter to the time. What would get there: move the fold into PostgreSQL (COPY the batch's flattened events into "
    "a temporary staging table, then merge with set-based statements ordered by offset: window functions for "
    "the forward-only status, the newest edit, the newest reaction and each chat's newest last message), which "
    "leaves Python flattening and COPY encoding (a few µs per event), at the price of more work in "
    "PostgreSQL. A per-partition cache of the rows the previous batch wrote (tried, not kept) removed most "
    "reads (their Python cost fell from 0.9 to 0.2 µs per event) but the bookkeeping ate the gain. For the "
    "parsing: per projection, slim read views of the payloads (only the fields a handler reads, validated from "
    "the JSON bytes with one compiled TypeAdapter per type) instead of the full contract models; for the "
    "decryption, one AES-GCM context per tenant key and batch (keys are already cached)."
)
NOTES_REPLAY = (
    "1,000,000 events produced and replayed in this run; nothing is extrapolated (before this work: ×0.08, "
    "measured on 60,000 events and extrapolated). The replay keeps one transaction per partition in flight "
    "(6 partitions, each on its own connection) so PostgreSQL writes while this process decodes, decrypts (personal "
    "fields are sealed per tenant since issue 17, as the runner writes them; the profile below predates that) and "
    "folds, "
    "commits 5,000 events per transaction, builds the readers' indexes once after the bulk load ({index_s} s "
    "here), and runs the garbage collector rarely (the baseline runs with the same collector settings). {goal} "
    "py-spy of the replay (300,000 events of the same mix): consuming and decoding, the baseline's whole job, "
    "is about a third of the samples (aiokafka's record unpacking ~18 %, Envelope.from_record ~16 %); "
    "projecting is another third (the fold ~12 %, loads ~11 %, writes ~11 %); asyncpg and socket I/O most of "
    "the rest. CPU of this process in this run: {cpu_base} µs per event for the baseline, {cpu_replay} µs for "
    "the replay, whose process was busy {busy} % of the wall time, plus {pg_cpu} µs per event in "
    "PostgreSQL's backends. The arithmetic: ×0.5 needs the whole replay, this process plus "
    "PostgreSQL's writes, within about twice the baseline's CPU per event, on 2 cores that Kafka and other "
    "engineers' test runs also use (see the load averages); the Python side alone is already "
    "{python_share}× the baseline. What would get there: the replay's total CPU per event has to come down "
    "to about twice the baseline's. In Python, a fold that does not build a dict per row (the batch COPYed "
    "into a staging table and merged with set-based statements, see note 3, or a compiled fold); in "
    "PostgreSQL, fewer statements and index probes per event. Partition workers in separate processes "
    "(partitions are independent) would let decoding and folding use the second core, but on this 2-core "
    "machine PostgreSQL needs that core."
)
RM_TABLES = ["rm_sessions", "rm_chats", "rm_messages", "rm_contacts", "rm_reactions", "rm_commands"]
PROJECT_EVENTS = 100_000
PROJECT_SESSIONS = 100
REPLAY_EVENTS = 1_000_000
REPLAY_SESSIONS = 1_000
TENANTS = 50
PARTITIONS = 6
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z
HISTORY_PAGE = 25
CONTACTS_PER_SESSION = 40

Payload = dict[str, Any]


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _message(mid: str, jid: str, from_me: bool, ts: int, text: str, status: str | None = None) -> Payload:
    return {"id": mid, "remoteJid": jid, "fromMe": from_me, "timestamp": ts, "type": "conversation", "text": text,
            "participant": None, "replyToMessageId": None, "forwarded": None, "pushName": None, "status": status}


def _session_script(index: int, seed: int) -> Iterator[tuple[str, Payload]]:
    """One session's events, in its order, without end (the caller takes as many as it needs)."""
    rng = random.Random(seed * 1_000_003 + index)
    tenant = f"bench-t{index % TENANTS}"
    chats = [f"5198{index:04d}{c:04d}@s.whatsapp.net" for c in range(CONTACTS_PER_SESSION)]
    clock = EPOCH + 3600
    n = 0
    sent: list[tuple[str, str]] = []
    incoming: list[tuple[str, str]] = []
    reacted: list[tuple[str, str, str]] = []
    history_ts = EPOCH

    def mid() -> str:
        nonlocal n
        n += 1
        return f"3EB0{index:05d}{n:07d}"

    def history_page(progress: int) -> Payload:
        nonlocal history_ts
        msgs = []
        for _ in range(HISTORY_PAGE):
            history_ts += 7
            msgs.append(_message(mid(), rng.choice(chats), rng.random() < 0.5, history_ts, f"old message {n}",
                                 "read"))
        return {"tenantId": tenant, "syncType": "INITIAL_BOOTSTRAP", "progress": progress, "isLatest": True,
                "chatsCount": len(chats), "contactsCount": 0, "messagesCount": len(msgs),
                "messagesTruncated": False, "messages": msgs}

    yield "session.created", {"tenantId": tenant, "id": "", "status": "created", "createdAt": _iso(clock),
                              "name": f"line {index}"}
    yield "session.qr.updated", {"tenantId": tenant, "expiresAt": _iso(clock + 60)}  # v2: the code is not logged
    yield "session.status.connected", {"tenantId": tenant, "phone": f"5199{index:07d}", "connectedAt": _iso(clock)}
    yield "session.contacts.upsert", {
        "tenantId": tenant, "contactsCount": len(chats), "contactsTruncated": False, "source": "history",
        "contacts": [{"id": j, "name": f"Contact {i}", "notify": None, "imgUrl": None} for i, j in enumerate(chats)]}
    for page in range(4):
        yield "session.history.sync", history_page(25 * (page + 1))
    while True:
        clock += rng.randint(1, 5)
        roll = rng.random()
        if roll < 0.40:  # a send: outcome + upsert, then the receipts
            m, jid = mid(), rng.choice(chats)
            command_id = str(uuid.UUID(int=rng.getrandbits(128)))
            yield "session.command.succeeded", {"tenantId": tenant, "commandId": command_id,
                                                "commandType": "session.send_message", "result": {"messageId": m}}
            yield "session.messages.upsert", {"tenantId": tenant, "upsertType": "notify", "requestId": None,
                                              "messagesCount": 1,
                                              "messages": [_message(m, jid, True, clock, f"hello {n}", "server_ack")]}
            for status in ("delivered", "read"):
                yield "session.messages.update", {
                    "tenantId": tenant, "updatesCount": 1, "source": "receipt",
                    "updates": [{"messageId": m, "remoteJid": jid, "status": status, "statusAt": clock + 2}]}
            sent.append((m, jid))
        elif roll < 0.72:  # an incoming message, and now and then its sender's new push name
            m, jid = mid(), rng.choice(chats)
            yield "session.messages.upsert", {"tenantId": tenant, "upsertType": "notify", "requestId": None,
                                              "messagesCount": 1,
                                              "messages": [_message(m, jid, False, clock, f"hi there {n}")]}
            incoming.append((m, jid))
            if rng.random() < 0.2:
                yield "session.contacts.upsert", {
                    "tenantId": tenant, "contactsCount": 1, "contactsTruncated": False, "source": "event",
                    "contacts": [{"id": jid, "name": None, "notify": f"push {n % 97}", "imgUrl": None}]}
        elif roll < 0.80 and incoming:  # this account reads the latest incoming messages
            batch = incoming[-3:]
            yield "session.messages.update", {
                "tenantId": tenant, "updatesCount": len(batch), "source": "read",
                "updates": [{"messageId": m, "remoteJid": j, "status": "read", "statusAt": clock} for m, j in batch]}
        elif roll < 0.88 and (sent or incoming):  # a reaction; a fifth of them removed later
            m, jid = rng.choice((sent or incoming)[-20:])
            actor = jid if rng.random() < 0.5 else f"5199{index:07d}@s.whatsapp.net"
            yield "session.messages.reaction", {
                "tenantId": tenant, "reactionsCount": 1, "source": "event",
                "reactions": [{"messageId": m, "chatJid": jid, "actorJid": actor, "fromMe": actor != jid,
                               "emoji": rng.choice(["👍", "❤️", "😂"]), "reactedAt": clock, "removed": False}]}
            reacted.append((m, jid, actor))
            if rng.random() < 0.2:
                yield "session.messages.reaction", {
                    "tenantId": tenant, "reactionsCount": 1, "source": "event",
                    "reactions": [{"messageId": m, "chatJid": jid, "actorJid": actor, "fromMe": actor != jid,
                                   "emoji": "", "reactedAt": clock + 1, "removed": True}]}
        elif roll < 0.94 and sent:  # an edit of a recent send
            m, jid = rng.choice(sent[-10:])
            yield "session.messages.edit", {
                "tenantId": tenant, "editsCount": 1,
                "edits": [{"messageId": m, "chatJid": jid, "type": "conversation", "text": f"edited {n}",
                           "editedAt": clock, "fromMe": True}]}
        elif roll < 0.97 and sent:  # a revoke
            m, jid = rng.choice(sent[-10:])
            yield "session.messages.delete", {
                "tenantId": tenant, "scope": "message", "chatJid": None, "deletesCount": 1, "deletedAt": None,
                "deletes": [{"messageId": m, "deletedAt": clock, "chatJid": jid, "fromMe": True}]}
        else:  # a later history page (on-demand sync)
            yield "session.history.sync", history_page(100)


class Generated:
    """The interleaved records of ``sessions`` sessions: (partition, key, value, headers)."""

    def __init__(self, total: int, sessions: int, keys: Mapping[str, bytes], partitions: int = PARTITIONS,
                 seed: int = 1) -> None:
        """``keys``: each tenant's data key (see :func:`tenant_keys`); personal fields are sealed with it."""
        self.total, self.sessions, self.partitions, self.seed = total, sessions, partitions, seed
        self.keys = keys
        self.sealed = 0  # records with at least one personal field encrypted
        self.session_ids = [str(uuid.UUID(int=random.Random(seed + i).getrandbits(128), version=4))
                            for i in range(sessions)]
        self.counts: dict[str, int] = {}
        self._static = {t: (t.encode(), dataschema(t, c.version).encode()) for t, c in SESSION_EVENTS.items()}

    def records(self) -> Iterator[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
        budgets = [self.total // self.sessions + (1 if i < self.total % self.sessions else 0)
                   for i in range(self.sessions)]
        scripts = [_session_script(i, self.seed) for i in range(self.sessions)]
        versions = [0] * self.sessions
        live = list(range(self.sessions))
        event_no = 0
        # Round robin over the sessions: what a partitioned topic of many live sessions looks like.
        while live:
            still = []
            for i in live:
                etype, payload = next(scripts[i])
                sid = self.session_ids[i]
                if etype == "session.created":
                    payload["id"] = sid
                tenant = payload["tenantId"]
                # What the runner's ``KeyRing.seal`` does to each event before it goes on the topic.
                sealed = encrypt_payload(etype, payload, self.keys[tenant], tenant)
                if sealed is not payload:
                    self.sealed += 1
                versions[i] += 1
                event_no += 1
                occurred = _iso(EPOCH + 7200 + event_no // 100)
                event_id = str(uuid.UUID(int=(self.seed << 64) + event_no))
                value = orjson.dumps({"type": etype, "sessionId": sid, "eventId": event_id, "occurredOn": occurred,
                                      "payload": sealed})
                st = self._static[etype]
                headers = [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_source", b"/bench"),
                           ("ce_type", st[0]), ("ce_time", occurred.encode()), ("ce_subject", sid.encode()),
                           ("ce_sequence", str(versions[i]).encode()), ("ce_tenantid", tenant.encode()),
                           ("ce_dataschema", st[1]), ("content-type", b"application/json")]
                self.counts[etype] = self.counts.get(etype, 0) + 1
                yield i % self.partitions, sid.encode(), value, headers
                if versions[i] < budgets[i]:
                    still.append(i)
            live = still

    def envelopes(self) -> list[Envelope]:
        return [Envelope.from_record(value, headers) for _, _, value, headers in self.records()]


async def tenant_keys(dsn: str) -> dict[str, bytes]:
    """The bench tenants' keys, created in ``dsn``'s ``pii_keys`` by the runner's key store (``KeyRing``)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        ring = KeyRing(pool)
        return {t: await ring.writer_key(t) for t in (f"bench-t{i}" for i in range(TENANTS))}
    finally:
        await pool.close()


async def _copy_keys(source: str, target: str) -> None:
    """The same keys in another database (the rebuild's), so it opens the same sealed events."""
    a, b = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        rows = await a.fetch("SELECT subject_id, tenant_id, kind, data_key FROM pii_keys")
        await b.copy_records_to_table("pii_keys", records=[tuple(r.values()) for r in rows],
                                      columns=["subject_id", "tenant_id", "kind", "data_key"])
    finally:
        await a.close()
        await b.close()


async def _still_sealed(conn: asyncpg.Connection | asyncpg.Pool, schema: str | None = None) -> dict[str, int]:
    """Rows per read-model table that still hold an encrypted value (must be none: the projector decrypts)."""
    prefix = f"{schema}." if schema else ""
    out = {t: await conn.fetchval(f"SELECT count(*) FROM {prefix}{t} x WHERE x::text LIKE $1", f"%{PREFIX}%")
           for t in RM_TABLES}
    return {t: n for t, n in out.items() if n}


async def _produce(topic: str, gen: Generated) -> tuple[int, float]:
    """Straight to the partitions with batch builders: no per-record futures, large batches, acks from the leader
    (the consumer side still reads read_committed, as replay does)."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks=1, linger_ms=50, max_batch_size=1024 * 1024,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    t0 = time.perf_counter()
    sent = 0
    try:
        builders = [producer.create_batch() for _ in range(gen.partitions)]
        pending: list[asyncio.Future[Any]] = []
        for partition, key, value, headers in gen.records():
            if builders[partition].append(timestamp=None, key=key, value=value, headers=headers) is None:
                pending.append(await producer.send_batch(builders[partition], topic, partition=partition))
                builders[partition] = producer.create_batch()
                builders[partition].append(timestamp=None, key=key, value=value, headers=headers)
            sent += 1
        for partition, builder in enumerate(builders):
            if builder.record_count():
                pending.append(await producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent, time.perf_counter() - t0


def _cpu_s(pids: list[int]) -> float | None:
    """CPU seconds used so far by these processes (same machine: /proc), or None."""
    try:
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


async def _backend_cpu_s(pool: asyncpg.Pool) -> float | None:
    """CPU seconds used so far by this database's PostgreSQL backends."""
    return _cpu_s([r["pid"] for r in await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")])


async def _raw_consume(settings: ProjectorSettings, topic: str) -> tuple[int, float]:
    """The baseline: replay's consumer settings, read_committed, every record decoded, nothing else."""
    consumer = replay_consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        t0 = time.perf_counter()
        seen = 0
        with bulk_gc():  # the replay's collector settings, so only the projection differs
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                for recs in (await consumer.getmany(timeout_ms=500, max_records=settings.replay_batch)).values():
                    for r in recs:
                        Envelope.from_record(r.value, r.headers)
                    seen += len(recs)
        return seen, time.perf_counter() - t0
    finally:
        await consumer.stop()


async def _apply(dsn: str, envs: list[Envelope], batch: int) -> tuple[float, dict[str, list[tuple[Any, ...]]]]:
    """Open (decrypt) and project ``envs`` in transactions of ``batch`` events, as ``Projector.apply_batch``
    does with a fresh ``KeyRing``; the seconds it took, and the resulting rows."""
    pool = await create_pool(PostgresSettings(dsn=SecretStr(dsn), min_pool=1, max_pool=2))
    try:
        keys = KeyRing(pool)
        async with pool.acquire() as conn:
            t = time.perf_counter()
            for i in range(0, len(envs), batch):
                async with conn.transaction():
                    await project(conn, "rm_v1", [await keys.open(e) for e in envs[i:i + batch]])
            seconds = time.perf_counter() - t
            sealed = await _still_sealed(conn, "rm_v1")
            assert not sealed, f"rows left encrypted: {sealed}"
            return seconds, {t: [tuple(r.values())
                                 for r in await conn.fetch(f"SELECT * FROM rm_v1.{t} ORDER BY 1, 2, 3")]
                             for t in RM_TABLES}
    finally:
        await pool.close()


async def bench_projector() -> dict[str, Any]:
    """The live projector's batch (``batch_max``) is the headline; a rebuild's batch (``replay_batch``) is shown too."""
    defaults = ProjectorSettings()
    names = [f"zb_proj_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    dsn_live, dsn_rebuild, dsn_copy = [await create_database(n) for n in names]
    try:
        gen = Generated(PROJECT_EVENTS, PROJECT_SESSIONS, await tenant_keys(dsn_live))
        await _copy_keys(dsn_live, dsn_rebuild)
        envs = gen.envelopes()  # generated, sealed and decoded before the clock starts, as before
        assert gen.sealed, "no event was sealed"
        async with LoadSampler() as load:
            seconds, tables = await _apply(dsn_live, envs, defaults.batch_max)
            rebuild_seconds, rebuild_tables = await _apply(dsn_rebuild, envs, defaults.replay_batch)
            assert rebuild_tables == tables, "the batch size changed the rows"
            rows = sum(map(len, tables.values()))
            b = await asyncpg.connect(dsn_copy)
            try:
                t0 = time.perf_counter()
                async with b.transaction():
                    for t, recs in tables.items():
                        if recs:
                            await b.copy_records_to_table(t, schema_name="rm_v1", records=recs)
                copy_seconds = time.perf_counter() - t0
            finally:
                await b.close()
    finally:
        for n in names:
            await drop_database(n)
    zs = len(envs) / seconds
    base = len(envs) / copy_seconds
    ratio = zs / base
    result = {
        "what": f"events/s applied to the read model (projector, {defaults.batch_max:,} events per transaction, "
                "its poll batch; personal fields sealed per tenant as the runner writes them, decrypted by the "
                "projector's KeyRing in the timed section) vs COPY of the same resulting rows (events/s "
                "equivalent)",
        "events": len(envs), "sessions": PROJECT_SESSIONS, "rows": rows,
        "sealed_events": gen.sealed, "decrypted_in_timed_section": True,
        "rows_per_table": {t: len(v) for t, v in tables.items()}, "event_mix": gen.counts,
        "zapstream": {"batch": defaults.batch_max, "seconds": round(seconds, 2), "events_per_s": round(zs, 1)},
        "zapstream_rebuild_batch": {"batch": defaults.replay_batch, "seconds": round(rebuild_seconds, 2),
                                    "events_per_s": round(len(envs) / rebuild_seconds, 1),
                                    "ratio": round(copy_seconds / rebuild_seconds, 4), "same_rows": True},
        "baseline_copy": {"seconds": round(copy_seconds, 3), "events_per_s": round(base, 1),
                          "rows_per_s": round(rows / copy_seconds, 1)},
        "ratio": round(ratio, 4), "goal": 0.3, "goal_met": ratio >= 0.3,
        **load.summary(),
        "notes": NOTES_PROJECTOR.format(goal=f"Goal ×0.3 {'met' if ratio >= 0.3 else 'NOT met'} in this run."),
    }
    write_result("3_projector", result)
    return result


async def bench_replay() -> dict[str, Any]:
    """The baseline runs right before and right after the replay: the machine is shared and its load moves
    on the scale of a minute, so the ratio is taken against the mean of the two."""
    async with bench_env(partitions=PARTITIONS) as env, LoadSampler() as load:
        topic = env.topics.session_events
        # Sealed with keys in the bench's database, which the replay's KeyRing reads back (decryption timed).
        gen = Generated(REPLAY_EVENTS, REPLAY_SESSIONS, await tenant_keys(env.dsn))
        produced, produce_s = await _produce(topic, gen)
        settings = ProjectorSettings(kafka=env.kafka, postgres=PostgresSettings(dsn=env.dsn, max_pool=8),
                                     projection="main", group_id=f"bench-{env.run_id}")
        baselines = []
        async with LoadSampler() as load_before:
            c0 = time.process_time()
            seen, read_s = await _raw_consume(settings, topic)
            baselines.append((seen, read_s, time.process_time() - c0, load_before.summary()))

        pool = await create_pool(settings.postgres)
        lines: list[str] = []
        try:
            async with LoadSampler() as load_replay:
                t0, c0 = time.perf_counter(), time.process_time()
                summary = await replay(settings, pool, progress_out=lines.append)
                replay_s, replay_cpu = time.perf_counter() - t0, time.process_time() - c0
            # The pool's backends were started for this replay: their CPU is PostgreSQL's share of it.
            pg_cpu = await _backend_cpu_s(pool)
            counts = {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in RM_TABLES}
            sealed = await _still_sealed(pool)
        finally:
            await pool.close()

        async with LoadSampler() as load_after:
            c0 = time.process_time()
            seen, read_s = await _raw_consume(settings, topic)
            baselines.append((seen, read_s, time.process_time() - c0, load_after.summary()))
    assert produced == REPLAY_EVENTS and all(b[0] == REPLAY_EVENTS for b in baselines), (produced, baselines)
    assert summary["events"] == REPLAY_EVENTS, summary
    assert summary["dead_lettered"] == 0, summary  # an event that did not open would be parked, not counted
    assert counts["rm_sessions"] == REPLAY_SESSIONS, counts
    assert gen.sealed and not sealed, f"sealed events: {gen.sealed}; rows left encrypted: {sealed}"
    zs = REPLAY_EVENTS / replay_s
    rates = [n / s for n, s, _, _ in baselines]
    base = sum(rates) / len(rates)
    ratio = zs / base

    def baseline(i: int) -> dict[str, Any]:
        n, s, cpu, la = baselines[i]
        return {"events": n, "seconds": round(s, 2), "events_per_s": round(n / s, 1),
                "cpu_us_per_event": round(cpu / n * 1e6, 2), **la}

    result = {
        "what": "replay (make replay's code path: a fresh projection from offset 0 into a new schema, then the swap) "
                "of 1,000,000 events, measured wall clock, personal fields sealed per tenant as the runner writes "
                "them and decrypted by the replay's KeyRing, vs raw read_committed consume + decode of the same topic "
                "(run before and after the replay; the ratio is to the mean of the two)",
        "events": REPLAY_EVENTS, "sessions": REPLAY_SESSIONS, "tenants": TENANTS, "partitions": PARTITIONS,
        "event_mix": gen.counts, "sealed_events": gen.sealed, "rows_after_replay": counts,
        "zapstream": {"seconds": round(replay_s, 2), "events_per_s": round(zs, 1),
                      "progress_bar_events_per_s": summary["events_per_s"],
                      "cpu_us_per_event": round(replay_cpu / REPLAY_EVENTS * 1e6, 2),
                      "postgres_cpu_us_per_event": round(pg_cpu / REPLAY_EVENTS * 1e6, 2) if pg_cpu else None,
                      "transactions": summary["transactions"],
                      "waiting_for_writes_s": summary["waiting_for_writes_s"],
                      "index_build_s": summary["index_build_s"],
                      "progress_bar_last_line": lines[-2].strip() if len(lines) > 1 else "",
                      **load_replay.summary()},
        "baseline_raw_consume": {"events_per_s": round(base, 1), "before": baseline(0), "after": baseline(1)},
        "ratio": round(ratio, 4), "goal": 0.5, "goal_met": ratio >= 0.5,
        "extrapolated": False,
        "produce": {"seconds": round(produce_s, 2), "events_per_s": round(produced / produce_s, 1)},
        **load.summary(),
        "notes": NOTES_REPLAY.format(
            goal=f"Goal ×0.5 {'met' if ratio >= 0.5 else 'NOT met'} in this run.",
            cpu_base=round(sum(b[2] for b in baselines) / sum(b[0] for b in baselines) * 1e6, 1),
            cpu_replay=round(replay_cpu / REPLAY_EVENTS * 1e6, 1), busy=round(100 * replay_cpu / replay_s),
            pg_cpu=round(pg_cpu / REPLAY_EVENTS * 1e6, 1) if pg_cpu else "(not measured)",
            index_s=summary["index_build_s"],
            python_share=round(replay_cpu * sum(b[0] for b in baselines) / REPLAY_EVENTS
                               / sum(b[2] for b in baselines), 1)),
    }
    write_result("4_replay", result)
    return result


if __name__ == "__main__":
    import sys

    which = sys.argv[1] if len(sys.argv) > 1 else "3"
    out = asyncio.run(bench_projector() if which == "3" else bench_replay())
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
