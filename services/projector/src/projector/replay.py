"""Zero-downtime projection rebuild, and a check that compares two versions.

1. Clone the active schema's tables (empty) into a new ``rm_vN+1``, without the
   indexes only readers use.
2. Project the event topic from offset 0 into it while the live projector keeps
   writing the active schema and the API keeps reading it (through the views in
   ``public``), several partitions at once.
3. Catch up to the live end and build the readers' indexes. Then lock the ``projections`` row FOR UPDATE: live
   batches finish and new ones wait. Project until the new version has passed
   the live projector's offsets, then, in that same transaction, hand it the
   offsets, make it active and repoint the views. The live projector resumes in
   the new schema and skips what the rebuild already applied.
4. Drop the old schema.

An event that cannot be projected does not stop a rebuild: it is parked in ``projector_dead_letters`` like the
live projector parks it (``Projector.apply_or_park``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from projector.app import Projector, checked_schema
from projector.settings import Settings
from zapstream_platform.topics import Topics, partitions_of

TABLES = ("rm_sessions", "rm_chats", "rm_messages", "rm_contacts", "rm_commands", "rm_reactions", "rm_groups")


@dataclass
class Progress:
    """Prints a one-line progress bar with events/s and an ETA."""

    total: int
    label: str
    out: Callable[[str], None] = lambda line: print(line, end="", file=sys.stderr, flush=True)
    done: int = 0
    started: float = 0.0
    last: float = 0.0

    def start(self) -> None:
        """The clock starts when reading starts, so the rate shown is the replay's whole rate."""
        self.started = time.monotonic()

    def advance(self, n: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.started:
            self.started = now
        self.done += n
        if not force and now - self.last < 0.5:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total > self.done else 0
        bar = "#" * int(share * 30)
        self.out(f"\r{self.label} [{bar:<30}] {self.done:,}/{self.total:,} {share:6.1%} {rate:,.0f} ev/s ETA {eta:,.0f}s ")

    def finish(self) -> float:
        self.advance(0, force=True)
        self.out("\n")
        return self.done / max(time.monotonic() - (self.started or time.monotonic()), 1e-6)


async def active_schema(pool: asyncpg.Pool, projection: str) -> str:
    schema = await pool.fetchval("SELECT active_schema FROM projections WHERE name = $1", projection)
    if schema is None:
        raise LookupError(f"unknown projection {projection!r}")
    return checked_schema(schema)


async def clone_schema(conn: asyncpg.Connection, source: str, target: str) -> None:
    await conn.execute(f"CREATE SCHEMA {checked_schema(target)}")
    for table in TABLES:
        await conn.execute(f"CREATE TABLE {target}.{table} (LIKE {checked_schema(source)}.{table} INCLUDING ALL)")


async def defer_indexes(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Drop the indexes of ``schema`` that only serve readers, and return their definitions.

    Those are the plain ones (not unique, not partial): the projector's statements use the primary keys and
    the partial unread index only. Keeping the others up to date row by row during a rebuild costs more than
    building them once at the end (``rm_chats_recent`` alone makes every last-message update a non-HOT one).
    """
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND NOT i.indisunique AND NOT i.indisprimary AND i.indpred IS NULL
           ORDER BY 1""",
        checked_schema(schema),
    )
    for r in rows:
        await conn.execute(f"DROP INDEX {r['name']}")
    return [r["definition"] for r in rows]


async def point_views(conn: asyncpg.Connection, schema: str) -> None:
    for table in TABLES:
        await conn.execute(f"CREATE OR REPLACE VIEW public.{table} AS SELECT * FROM {checked_schema(schema)}.{table}")


async def _next_schema(pool: asyncpg.Pool) -> str:
    rows = await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname ~ '^rm_v[0-9]+$'")
    highest = max((int(r["nspname"][4:]) for r in rows), default=0)
    return f"rm_v{highest + 1}"


@contextmanager
def bulk_gc() -> Iterator[None]:
    """Garbage collection tuned for a bulk read: rare collections of young objects, nothing from before scanned.

    A rebuild keeps tens of thousands of fetched records and folded rows alive at once and frees them a batch
    at a time. With the default thresholds the collector keeps walking that whole heap (py-spy: about a third
    of a replay's CPU). Records, envelopes, payload models and rows hold no reference cycles, so collecting
    rarely frees the same memory, just later. A young collection scans what is alive of the batches in flight, so
    fewer of them cost less, and payload models allocate a few objects per item. Replaying 200,000 events of the
    bench mix: 100,000 allocations (the setting before payloads were parsed into models) 32–33 µs of CPU per event
    and a peak RSS of 431–466 MB; 300,000, 30 µs and 444 MB; 1,000,000, 28–29 µs but 495–530 MB (cyclic garbage,
    from the client libraries, waits longer). The previous settings are restored afterwards.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(300_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def replay_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The replay's reader (also the bench's raw-consume baseline, so both fetch alike)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def _pump(
    consumer: AIOKafkaConsumer,
    builder: Projector,
    tps: list[TopicPartition],
    targets: dict[TopicPartition, int],
    batch: int,
    bar: Progress,
    stats: dict[str, int],
) -> None:
    """Read until every partition reaches ``targets``, applying up to ``batch`` records per transaction.

    Partitions are independent (a session lives in one), so each has its own transaction in flight on its
    own connection while the loop fetches more: while PostgreSQL writes one partition's batch, this process
    decodes and folds another's. Within a partition, batches are applied strictly in order, one at a time.
    """
    pending: dict[TopicPartition, list[Any]] = {tp: [] for tp in tps}
    inflight: dict[TopicPartition, asyncio.Task[int]] = {}
    fetching: asyncio.Task[dict[TopicPartition, list[Any]]] | None = None
    limit = batch * (len(tps) + 2)  # records fetched ahead of the writes, at most

    async def apply(tp: TopicPartition, records: list[Any]) -> int:
        # A record that cannot be projected is parked, as the live projector parks it, and the rebuild goes on.
        stats["dead_lettered"] += await builder.apply_or_park(tp, records)
        return len(records)

    try:
        while True:
            unread = {tp for tp in tps if await consumer.position(tp) < targets[tp]}
            buffered = sum(map(len, pending.values()))
            for tp, records in pending.items():
                # Full batches only, unless the partition is read to its target or the buffer is full.
                if records and tp not in inflight and (len(records) >= batch or tp not in unread
                                                       or buffered >= limit):
                    pending[tp] = records[batch:]
                    inflight[tp] = asyncio.create_task(apply(tp, records[:batch]))
                    stats["transactions"] += 1
            if fetching is None and unread and buffered < limit:
                fetching = asyncio.create_task(consumer.getmany(timeout_ms=500, max_records=batch))
            if fetching is None and not inflight:
                if not unread and not buffered:
                    return
                continue
            # Whichever comes first, a fetch or a finished batch, so a partition's next batch starts at once.
            waited = time.monotonic()
            await asyncio.wait([*inflight.values(), *([fetching] if fetching else [])],
                               return_when=asyncio.FIRST_COMPLETED)
            if fetching is None:
                stats["waiting_ms"] += round((time.monotonic() - waited) * 1000)
            elif fetching.done():
                for tp, records in fetching.result().items():
                    pending[tp].extend(records)
                fetching = None
            for tp, task in list(inflight.items()):
                if task.done():
                    del inflight[tp]
                    bar.advance(task.result())
    finally:
        unfinished: list[asyncio.Task[Any]] = [*inflight.values(), *([fetching] if fetching else [])]
        for t in unfinished:
            t.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)


async def replay(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    keep_old: bool = False,
    progress_out: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Rebuild ``settings.projection`` into a new schema and swap it in; returns a summary."""
    projection = settings.projection
    old = await active_schema(pool, projection)
    new = await _next_schema(pool)
    async with pool.acquire() as conn, conn.transaction():
        await clone_schema(conn, old, new)
        deferred = await defer_indexes(conn, new)
    rebuild_name = f"{projection}@{new}"
    builder = Projector(settings.model_copy(update={"projection": rebuild_name}), pool, schema=new,
                        parks_as=projection)

    topic = Topics.from_settings(settings.kafka).session_events
    tps = [TopicPartition(topic, p) for p in await partitions_of(settings.kafka.bootstrap_servers, topic)]
    consumer = replay_consumer(settings)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        bar = Progress(total=sum(end.values()), label=f"replay {projection} -> {new}")
        if progress_out is not None:
            bar.out = progress_out
        bar.start()
        stats = {"transactions": 0, "waiting_ms": 0, "dead_lettered": 0}

        async def pump_until(targets: dict[TopicPartition, int]) -> None:
            with bulk_gc():
                await _pump(consumer, builder, tps, targets, settings.replay_batch, bar, stats)

        # Catch up while everything is live; the end moves, so chase it a few rounds.
        for _ in range(5):
            await pump_until(end)
            new_end = await consumer.end_offsets(tps)
            if new_end == end:
                break
            bar.total = sum(new_end.values())
            end = new_end

        # The readers' indexes, built once over the rebuilt tables, before anything reads them.
        building = time.monotonic()
        async with pool.acquire() as conn:
            for definition in deferred:
                await conn.execute(definition)
        stats["index_build_ms"] = round((time.monotonic() - building) * 1000)

        async with pool.acquire() as lock_conn, lock_conn.transaction():
            await lock_conn.execute("SELECT 1 FROM projections WHERE name = $1 FOR UPDATE", projection)
            live = {
                r["partition"]: r["next_offset"]
                for r in await lock_conn.fetch(
                    "SELECT partition, next_offset FROM projector_offsets WHERE projection = $1 AND topic = $2",
                    projection, topic,
                )
            }
            await pump_until({tp: max(live.get(tp.partition, 0), 0) for tp in tps})
            await lock_conn.execute(
                """INSERT INTO projector_offsets (projection, topic, partition, next_offset)
                   SELECT $1, topic, partition, next_offset FROM projector_offsets WHERE projection = $2
                   ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
                projection, rebuild_name,
            )
            await lock_conn.execute("DELETE FROM projector_offsets WHERE projection = $1", rebuild_name)
            await lock_conn.execute(
                "UPDATE projections SET active_schema = $2, swapped_at = now() WHERE name = $1", projection, new
            )
            await point_views(lock_conn, new)
        rate = bar.finish()
    finally:
        await consumer.stop()
    if not keep_old:
        await pool.execute(f"DROP SCHEMA {checked_schema(old)} CASCADE")
    return {"projection": projection, "from": old, "to": new, "events": bar.done, "events_per_s": round(rate),
            "transactions": stats["transactions"], "waiting_for_writes_s": stats["waiting_ms"] / 1000,
            "index_build_s": stats["index_build_ms"] / 1000, "dead_lettered": stats["dead_lettered"],
            "old_dropped": not keep_old}


async def compare(
    pool: asyncpg.Pool, a: str, b: str, tenant_id: str | None = None
) -> dict[str, dict[str, object]]:
    """Row counts and content checksums of every read-model table in two schemas (optionally one tenant's)."""
    report: dict[str, dict[str, object]] = {}
    where = "WHERE t.tenant_id = $1" if tenant_id is not None else ""
    args = [tenant_id] if tenant_id is not None else []
    for table in TABLES:
        sums = []
        for schema in (checked_schema(a), checked_schema(b)):
            row = await pool.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS sum "
                f"FROM {schema}.{table} t {where}",
                *args,
            )
            assert row is not None
            sums.append((row["n"], row["sum"]))
        report[table] = {"rows": [sums[0][0], sums[1][0]], "checksums": [sums[0][1], sums[1][1]],
                         "equal": sums[0] == sums[1]}
    return report
